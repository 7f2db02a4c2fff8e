-- Completions coalesced like claims: many complete-task calls in one statement and one commit.
--
-- Item n of the arrays is one completion with the powers of taskclaim_complete: it completes the task when
-- its holder (worker_id and, if given, attempt) still holds it, answers the same again when that holder
-- already completed it, and otherwise names the error that taskclaim_complete would raise (TC404, TC409) in
-- error_code and error instead of raising, so one stale holder does not fail the others of its batch.
-- A task must appear at most once per call (the service sends a repeated one in the next batch).
create function public.taskclaim_complete_batch(
  p_task_ids         uuid[],
  p_worker_ids       text[],
  p_attempts         integer[],
  p_results          jsonb[],
  p_output_locations text[],
  p_user_id          uuid default null
) returns table (
  ordinal integer, task_id uuid, status public.task_status, generation_processed_at timestamptz,
  error_code text, error text
)
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_count integer := cardinality(p_task_ids);
begin
  if v_count is null or v_count = 0
     or cardinality(p_worker_ids) is distinct from v_count or cardinality(p_attempts) is distinct from v_count
     or cardinality(p_results) is distinct from v_count
     or cardinality(p_output_locations) is distinct from v_count then
    raise exception 'the item arrays must be non-empty and of one length' using errcode = 'TC400';
  end if;
  if (select count(distinct x) from unnest(p_task_ids) x) <> v_count then
    raise exception 'a task may appear once per batch' using errcode = 'TC400';
  end if;
  return query
    with items as (
      select i.n::integer as n, i.task_id, i.worker_id, i.attempt, i.result, i.output_location
        from unnest(p_task_ids, p_worker_ids, p_attempts, p_results, p_output_locations)
             with ordinality as i(task_id, worker_id, attempt, result, output_location, n)
    ), done as (
      update public.tasks t
         set status = 'Complete', result = i.result, output_location = i.output_location,
             generation_processed_at = now(), updated_at = now(), lease_expires_at = null
        from items i
       where t.id = i.task_id and t.status = 'In Progress' and t.worker_id = i.worker_id
         and (i.attempt is null or t.attempts = i.attempt)
         and (p_user_id is null or t.user_id = p_user_id)
      returning i.n, t.id, t.status, t.generation_processed_at
    )
    select d.n, d.id, d.status, d.generation_processed_at, null::text, null::text from done d
    union all
    -- The rest, read as they were before this statement (which did not touch them).
    select i.n, i.task_id, t.status, t.generation_processed_at,
           case when t.id is null then 'TC404'
                when t.status = 'Complete' and t.worker_id = i.worker_id
                     and (i.attempt is null or t.attempts = i.attempt) then null
                else 'TC409' end,
           case when t.id is null then format('task %s not found', i.task_id)
                when t.status = 'Complete' and t.worker_id = i.worker_id
                     and (i.attempt is null or t.attempts = i.attempt) then null
                else format('task %s is not held by this worker (status %s, worker %s, attempt %s)',
                            i.task_id, t.status, coalesce(t.worker_id, '-'), t.attempts) end
      from items i
      left join public.tasks t on t.id = i.task_id and (p_user_id is null or t.user_id = p_user_id)
     where not exists (select 1 from done d where d.n = i.n);
end
$$;
revoke all on function public.taskclaim_complete_batch(uuid[], text[], integer[], jsonb[], text[], uuid)
  from public, anon, authenticated;
grant execute on function public.taskclaim_complete_batch(uuid[], text[], integer[], jsonb[], text[], uuid)
  to service_role;
