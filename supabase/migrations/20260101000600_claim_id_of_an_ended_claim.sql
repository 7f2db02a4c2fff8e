-- A claim_id names one claim. Once the task it took has ended (completed, say), the same claim_id used to
-- find no held task and collide with the finished row's claim_id on every try, so the claim answered "nothing
-- to claim" for ever. It now says what happened: TC409, the claim_id belongs to a claim that has ended.
create or replace function public.taskclaim_claim(
  p_worker_id     text,
  p_user_id       uuid default null,
  p_lease_seconds integer default 300,
  p_claim_id      uuid default null
) returns table (
  task_id uuid, params jsonb, task_type text, project_id uuid,
  worker_id text, attempt integer, lease_expires_at timestamptz
)
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  if p_claim_id is null then
    return query select * from public.taskclaim_claim_next(p_worker_id, p_user_id, p_lease_seconds, null);
    return;
  end if;
  for attempt_no in 1..2 loop
    return query
      select t.id, t.params, t.task_type, t.project_id, t.worker_id, t.attempts, t.lease_expires_at
        from public.tasks t
       where t.claim_id = p_claim_id and t.status = 'In Progress'
         and (p_user_id is null or t.user_id = p_user_id);
    if found then
      return;
    end if;
    begin
      return query select * from public.taskclaim_claim_next(p_worker_id, p_user_id, p_lease_seconds, p_claim_id);
      return;
    exception when unique_violation then
      null;  -- a concurrent claim with the same claim_id won, or an ended claim holds it: look again
    end;
  end loop;
  raise exception 'claim_id % belongs to a claim that has ended', p_claim_id using errcode = 'TC409';
end
$$;

revoke all on function public.taskclaim_claim(text, uuid, integer, uuid) from public, anon, authenticated;
grant execute on function public.taskclaim_claim(text, uuid, integer, uuid) to service_role;
