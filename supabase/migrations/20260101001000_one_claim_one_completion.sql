-- One claim and one completion. Until now the claim was written in five functions (taskclaim_claim_next
-- twice, taskclaim_claim_batch twice, the typed overload once) and completion in two. Now
-- taskclaim_claim_core is the claim: every other claim function (the plan's func_claim_task and
-- func_claim_user_task, taskclaim_claim with its claim_id, the batch forms) calls it. And
-- taskclaim_complete is one item of taskclaim_complete_batch.
--
-- The core still has branches. Each one is for PostgreSQL's planner, which caches one plan per statement
-- text inside a PL/pgSQL function; the figures are pgbench, one client, 400,000 ready tasks (BENCHMARKS.md):
-- - a LIMIT the planner can see: with "limit cardinality(p_worker_ids)" it cannot estimate the rows, so
--   it plans every call anew (0.53 ms a lone claim, against 0.41 ms with "limit 1"); a batch takes up to
--   100 rows under the lock (a constant) and then as many as it has workers, so its plan is cached too
--   (16 workers: 0.78 ms, against 1.04 ms). The executor pulls rows as it needs them, so rows past the
--   outer LIMIT are never locked;
-- - one user's tasks are read from tasks_ready_user_idx, never from tasks_ready_idx: the latter made a
--   user's claim walk past every other user's ready tasks ahead of theirs (measured: 326 buffers a claim
--   behind another user's 200,000). The planner estimates "user_id = $2" at its average selectivity and
--   drops user_id from an ORDER BY it fixes, so both indexes looked alike to it; written as the range
--   "user_id >= $2 and user_id <= $2" and ordered by (user_id, created_at, id), only the user's index
--   gives the order, and it is chosen;
-- - task_type filters are planned per call (EXECUTE), so the planner sees how many types and whose.

create function public.taskclaim_claim_core(
  p_worker_ids    text[],
  p_user_id       uuid,
  p_lease_seconds integer,
  p_task_types    text[],
  p_claim_id      uuid
) returns table (
  ordinal integer, task_id uuid, params jsonb, task_type text, project_id uuid,
  worker_id text, attempt integer, lease_expires_at timestamptz
)
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  perform public.taskclaim_check_claim(p_worker_ids, p_lease_seconds, p_task_types);
  if cardinality(p_worker_ids) > 100 then
    raise exception 'a claim takes at most 100 tasks' using errcode = 'TC400';
  end if;
  if p_claim_id is not null and cardinality(p_worker_ids) <> 1 then
    raise exception 'a claim_id names the claim of one task' using errcode = 'TC400';
  end if;

  if p_task_types is not null then
    return query execute
      'with picked as (
         select s.id, s.created_at from (
           select t.id, t.created_at from public.tasks t
            where t.status = ''Queued'' and not t.blocked and '
      || case when cardinality(p_task_types) = 1 then 't.task_type = ($4)[1]' else 't.task_type = any($4)' end
      || case when p_user_id is null then ' order by t.created_at, t.id'
              else ' and t.user_id >= $2 and t.user_id <= $2 order by t.user_id, t.created_at, t.id' end
      || '  limit 100
            for update skip locked
         ) s
         limit cardinality($1)
       ), numbered as (
         select p.id, (row_number() over (order by p.created_at, p.id))::integer as n from picked p
       )
       update public.tasks t
          set status = ''In Progress'', worker_id = ($1)[numbered.n], attempts = t.attempts + 1,
              updated_at = now(), generation_started_at = now(), claim_id = $5,
              lease_expires_at = now() + make_interval(secs => $3)
         from numbered
        where t.id = numbered.id
       returning numbered.n, t.id, t.params, t.task_type, t.project_id, t.worker_id, t.attempts,
                 t.lease_expires_at'
      using p_worker_ids, p_user_id, p_lease_seconds, p_task_types, p_claim_id;
  elsif p_user_id is null and cardinality(p_worker_ids) = 1 then
    return query
      with picked as (
        select t.id from public.tasks t
         where t.status = 'Queued' and not t.blocked
         order by t.created_at, t.id
         limit 1
         for update skip locked
      )
      update public.tasks t
         set status = 'In Progress', worker_id = p_worker_ids[1], attempts = t.attempts + 1,
             updated_at = now(), generation_started_at = now(), claim_id = p_claim_id,
             lease_expires_at = now() + make_interval(secs => p_lease_seconds)
        from picked
       where t.id = picked.id
      returning 1, t.id, t.params, t.task_type, t.project_id, t.worker_id, t.attempts, t.lease_expires_at;
  elsif p_user_id is null then
    return query
      with picked as (
        select s.id, s.created_at from (
          select t.id, t.created_at from public.tasks t
           where t.status = 'Queued' and not t.blocked
           order by t.created_at, t.id
           limit 100
           for update skip locked
        ) s
        limit cardinality(p_worker_ids)
      ), numbered as (
        select p.id, (row_number() over (order by p.created_at, p.id))::integer as n from picked p
      )
      update public.tasks t
         set status = 'In Progress', worker_id = p_worker_ids[numbered.n], attempts = t.attempts + 1,
             updated_at = now(), generation_started_at = now(), claim_id = null,
             lease_expires_at = now() + make_interval(secs => p_lease_seconds)
        from numbered
       where t.id = numbered.id
      returning numbered.n, t.id, t.params, t.task_type, t.project_id, t.worker_id, t.attempts,
                t.lease_expires_at;
  elsif cardinality(p_worker_ids) = 1 then
    return query
      with picked as (
        select t.id from public.tasks t
         where t.status = 'Queued' and not t.blocked and t.user_id >= p_user_id and t.user_id <= p_user_id
         order by t.user_id, t.created_at, t.id
         limit 1
         for update skip locked
      )
      update public.tasks t
         set status = 'In Progress', worker_id = p_worker_ids[1], attempts = t.attempts + 1,
             updated_at = now(), generation_started_at = now(), claim_id = p_claim_id,
             lease_expires_at = now() + make_interval(secs => p_lease_seconds)
        from picked
       where t.id = picked.id
      returning 1, t.id, t.params, t.task_type, t.project_id, t.worker_id, t.attempts, t.lease_expires_at;
  else
    return query
      with picked as (
        select s.id, s.created_at from (
          select t.id, t.created_at from public.tasks t
           where t.status = 'Queued' and not t.blocked and t.user_id >= p_user_id and t.user_id <= p_user_id
           order by t.user_id, t.created_at, t.id
           limit 100
           for update skip locked
        ) s
        limit cardinality(p_worker_ids)
      ), numbered as (
        select p.id, (row_number() over (order by p.created_at, p.id))::integer as n from picked p
      )
      update public.tasks t
         set status = 'In Progress', worker_id = p_worker_ids[numbered.n], attempts = t.attempts + 1,
             updated_at = now(), generation_started_at = now(), claim_id = null,
             lease_expires_at = now() + make_interval(secs => p_lease_seconds)
        from numbered
       where t.id = numbered.id
      returning numbered.n, t.id, t.params, t.task_type, t.project_id, t.worker_id, t.attempts,
                t.lease_expires_at;
  end if;
end
$$;

-- Every other claim is the core.
create or replace function public.taskclaim_claim_next(
  p_worker_id     text,
  p_user_id       uuid,
  p_lease_seconds integer,
  p_claim_id      uuid
) returns table (
  task_id uuid, params jsonb, task_type text, project_id uuid,
  worker_id text, attempt integer, lease_expires_at timestamptz
)
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  return query
    select c.task_id, c.params, c.task_type, c.project_id, c.worker_id, c.attempt, c.lease_expires_at
      from public.taskclaim_claim_core(array[p_worker_id], p_user_id, p_lease_seconds, null, p_claim_id) c;
end
$$;

-- The plan's RPCs, one call from the core (each layer of PL/pgSQL costs a lone claim some 20 µs).
create or replace function public.func_claim_task(p_table_name text, p_worker_id text)
returns table (
  task_id uuid, params jsonb, task_type text, project_id uuid,
  worker_id text, attempt integer, lease_expires_at timestamptz
)
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  perform public.taskclaim_check_table(p_table_name);
  return query
    select c.task_id, c.params, c.task_type, c.project_id, c.worker_id, c.attempt, c.lease_expires_at
      from public.taskclaim_claim_core(array[p_worker_id], null, 300, null, null) c;
end
$$;

create or replace function public.func_claim_user_task(p_table_name text, p_worker_id text, p_user_id uuid)
returns table (
  task_id uuid, params jsonb, task_type text, project_id uuid,
  worker_id text, attempt integer, lease_expires_at timestamptz
)
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  perform public.taskclaim_check_table(p_table_name);
  if p_user_id is null then
    raise exception 'p_user_id must not be null' using errcode = 'TC400';
  end if;
  return query
    select c.task_id, c.params, c.task_type, c.project_id, c.worker_id, c.attempt, c.lease_expires_at
      from public.taskclaim_claim_core(array[p_worker_id], p_user_id, 300, null, null) c;
end
$$;

create or replace function public.taskclaim_claim_batch(
  p_worker_ids    text[],
  p_user_id       uuid,
  p_lease_seconds integer
) returns table (
  ordinal integer, task_id uuid, params jsonb, task_type text, project_id uuid,
  worker_id text, attempt integer, lease_expires_at timestamptz
)
  language sql
  security definer
  set search_path = ''
as $$
  select * from public.taskclaim_claim_core(p_worker_ids, p_user_id, p_lease_seconds, null, null)
$$;

create or replace function public.taskclaim_claim_batch(
  p_worker_ids    text[],
  p_user_id       uuid,
  p_lease_seconds integer,
  p_task_types    text[]
) returns table (
  ordinal integer, task_id uuid, params jsonb, task_type text, project_id uuid,
  worker_id text, attempt integer, lease_expires_at timestamptz
)
  language sql
  security definer
  set search_path = ''
as $$
  select * from public.taskclaim_claim_core(p_worker_ids, p_user_id, p_lease_seconds, p_task_types, null)
$$;

-- One completion is a batch of one.
create or replace function public.taskclaim_complete(
  p_task_id         uuid,
  p_worker_id       text,
  p_attempt         integer default null,
  p_result          jsonb default null,
  p_output_location text default null,
  p_user_id         uuid default null
) returns table (task_id uuid, status public.task_status, generation_processed_at timestamptz)
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_done record;
begin
  select * into v_done
    from public.taskclaim_complete_batch(array[p_task_id], array[p_worker_id], array[p_attempt],
                                         array[p_result], array[p_output_location], p_user_id);
  if v_done.error_code is not null then
    raise exception '%', v_done.error using errcode = v_done.error_code;
  end if;
  return query select v_done.task_id, v_done.status, v_done.generation_processed_at;
end
$$;

revoke all on function public.taskclaim_claim_core(text[], uuid, integer, text[], uuid)
  from public, anon, authenticated;
grant execute on function public.taskclaim_claim_core(text[], uuid, integer, text[], uuid) to service_role;
