-- An idle fleet that costs PostgreSQL nothing (issue 13). A service whose notifications are proven to arrive
-- trusts two things it has looked up until a notification says otherwise:
--
-- * "this scope has no ready task": so a task becoming ready must always notify its owner. Besides being
--   created ready, unblocked or put back in the queue, a ready task can change owner (its project moved to
--   another user); the update trigger now covers that too, and notifies the new owner.
-- * "this personal access token belongs to this user": any change to what decides it (revoked, expiry
--   changed, owner changed, deleted) sends NOTIFY taskclaim_tokens with the token's hash, and the service
--   forgets it.

drop trigger tasks_ready_after_update on public.tasks;
create trigger tasks_ready_after_update after update of status, blocked, user_id on public.tasks
  for each row
  when (new.status = 'Queued' and not new.blocked
        and (old.status <> 'Queued' or old.blocked or old.user_id is distinct from new.user_id))
  execute function public.taskclaim_notify_ready();

create function public.taskclaim_notify_token_change() returns trigger
  language plpgsql
  set search_path = ''
as $$
begin
  perform pg_notify('taskclaim_tokens', old.jti_hash);
  return null;
end
$$;
revoke all on function public.taskclaim_notify_token_change() from public, anon, authenticated;

-- Not on last_used_at alone: every look-up sets that, and would make the service forget what it just cached.
create trigger user_api_token_changed after update of user_id, jti_hash, expires_at, revoked_at or delete
  on public.user_api_token
  for each row execute function public.taskclaim_notify_token_change();
