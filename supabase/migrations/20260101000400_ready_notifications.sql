-- Long-poll claims: whenever a task becomes claimable (created ready, unblocked, or back in the queue),
-- NOTIFY taskclaim_ready with its owner's id. Waiting claims of that user and of the service wake up
-- instead of polling. PostgreSQL folds identical notifications of one transaction into one, so a bulk
-- insert sends one per user. Claims themselves never notify (the WHEN clauses exclude them).

create function public.taskclaim_notify_ready() returns trigger
  language plpgsql
  set search_path = ''
as $$
begin
  perform pg_notify('taskclaim_ready', new.user_id::text);
  return null;
end
$$;

create trigger tasks_ready_after_insert after insert on public.tasks
  for each row when (new.status = 'Queued' and not new.blocked)
  execute function public.taskclaim_notify_ready();

create trigger tasks_ready_after_update after update of status, blocked on public.tasks
  for each row
  when (new.status = 'Queued' and not new.blocked and (old.status <> 'Queued' or old.blocked))
  execute function public.taskclaim_notify_ready();

revoke all on function public.taskclaim_notify_ready() from public, anon, authenticated;
