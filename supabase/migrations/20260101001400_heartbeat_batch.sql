-- Heartbeats of many held tasks in one statement (issue 14): the worker extends every lease that is due in
-- one heartbeat-tasks request instead of one request per task. Each item is answered on its own, as
-- taskclaim_heartbeat would have answered it alone: the new expiry, or 404 / 409 with the same message.
-- lease_seconds per item (null: the length of the lease the task has), checked as taskclaim_heartbeat does.

create function public.taskclaim_heartbeat_batch(
  p_task_ids      uuid[],
  p_worker_ids    text[],
  p_attempts      integer[],
  p_lease_seconds integer[],
  p_user_id       uuid default null
) returns table (ordinal integer, task_id uuid, lease_expires_at timestamptz, error_code text, error text)
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_count integer := cardinality(p_task_ids);
begin
  if v_count is null or v_count = 0 or v_count > 100
     or cardinality(p_worker_ids) is distinct from v_count or cardinality(p_attempts) is distinct from v_count
     or cardinality(p_lease_seconds) is distinct from v_count then
    raise exception 'the item arrays must be of one length, 1 to 100' using errcode = 'TC400';
  end if;
  if exists (select 1 from unnest(p_lease_seconds) s where s not between 1 and 86400) then
    raise exception 'lease_seconds must be from 1 to 86400' using errcode = 'TC400';
  end if;
  if (select count(distinct x) from unnest(p_task_ids) x) <> v_count then
    raise exception 'a task may appear once per batch' using errcode = 'TC400';
  end if;
  return query
    with items as (
      select i.n::integer as n, i.task_id, i.worker_id, i.attempt, i.lease_seconds
        from unnest(p_task_ids, p_worker_ids, p_attempts, p_lease_seconds)
             with ordinality as i(task_id, worker_id, attempt, lease_seconds, n)
    ), beaten as (
      update public.tasks t
         set lease_expires_at = now() + make_interval(secs => coalesce(
               i.lease_seconds,
               greatest(1, ceil(extract(epoch from t.lease_expires_at - t.updated_at)))::integer
             )),
             updated_at = now()
        from items i
       where t.id = i.task_id and t.status = 'In Progress' and t.worker_id = i.worker_id
         and (i.attempt is null or t.attempts = i.attempt)
         and (p_user_id is null or t.user_id = p_user_id)
      returning i.n, t.id, t.lease_expires_at
    )
    select b.n, b.id, b.lease_expires_at, null::text, null::text from beaten b
    union all
    -- The rest, read as they were before this statement (which did not touch them).
    select i.n, i.task_id, null::timestamptz,
           case when t.id is null then 'TC404' else 'TC409' end,
           case when t.id is null then format('task %s not found', i.task_id)
                else format('task %s is not held by this worker (status %s, worker %s, attempt %s)',
                            i.task_id, t.status, coalesce(t.worker_id, '-'), t.attempts) end
      from items i
      left join public.tasks t on t.id = i.task_id and (p_user_id is null or t.user_id = p_user_id)
     where not exists (select 1 from beaten b where b.n = i.n);
end
$$;
revoke all on function public.taskclaim_heartbeat_batch(uuid[], text[], integer[], integer[], uuid)
  from public, anon, authenticated;
grant execute on function public.taskclaim_heartbeat_batch(uuid[], text[], integer[], integer[], uuid)
  to service_role;
