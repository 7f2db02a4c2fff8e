-- Nothing one caller sends can hurt another user's tasks, on the direct path too.
--
-- 1. The SQL functions check what the HTTP service checks (taskclaim/limits.py holds the numbers; the
--    tests hold both sides to them): names of 1 to 200 characters, error texts up to 8,192, output
--    locations up to 2,048, max_attempts up to 1,000, leases up to a day, and JSON that every reader gets
--    back unchanged (integers within ±(2^53 - 1), nesting at most 64 deep). A task that could never be
--    returned is never stored, so no stored task can fail the claims that take it.
-- 2. A coalesced completion answers a bad item with its own TC400 instead of failing its batch.
-- 3. A heartbeat without a lease extends by the length of the lease the task was last given, not 300 s.
-- 4. Row Level Security holds without a WHERE clause: a user may only move their own Queued, unblocked
--    task to In Progress, and set nothing but status and worker_id; a trigger gives such a claim its
--    lease and attempt, so the reaper recovers it like any other.
-- 5. Where auth.users exists (every Supabase database), projects and tokens belong to a user row and go
--    with it; taskclaim_delete_user does the same where it does not.

-- Why a JSON value could not be returned unchanged, or null. Mirrors taskclaim.limits.json_problem.
create function public.taskclaim_json_problem(p_value jsonb) returns text
  language sql
  immutable
  parallel safe
  set search_path = ''
as $$
  select case
    when p_value is null then null
    when jsonb_path_exists(p_value, 'strict $.**{64 to last} ? (@.type() == "object" || @.type() == "array")')
      then 'nests deeper than 64 levels'
    when jsonb_path_exists(
      p_value,
      'strict $.** ? (@.type() == "number" && (@ > 9007199254740991 || @ < -9007199254740991)
                      && (@.floor() == @ || @ > 1.7976931348623157e308 || @ < -1.7976931348623157e308))'
    ) then 'has an integer outside ±9007199254740991'
  end
$$;

-- The checks every claim makes of its arguments.
create function public.taskclaim_check_claim(
  p_worker_ids    text[],
  p_lease_seconds integer,
  p_task_types    text[] default null
) returns void
  language plpgsql
  immutable
  set search_path = ''
as $$
begin
  if p_worker_ids is null or cardinality(p_worker_ids) = 0 or exists (
    select 1 from unnest(p_worker_ids) w where w is null or length(w) not between 1 and 200
  ) then
    raise exception 'worker_id must be a string of 1 to 200 characters' using errcode = 'TC400';
  end if;
  if p_lease_seconds is null or p_lease_seconds not between 1 and 86400 then
    raise exception 'lease_seconds must be from 1 to 86400' using errcode = 'TC400';
  end if;
  if p_task_types is not null and (
    cardinality(p_task_types) not between 1 and 20
    or exists (select 1 from unnest(p_task_types) t where t is null or length(t) not between 1 and 200)
  ) then
    raise exception 'task_types must be a list of 1 to 20 task types of 1 to 200 characters'
      using errcode = 'TC400';
  end if;
end
$$;

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
  perform public.taskclaim_check_claim(array[p_worker_id], p_lease_seconds);
  -- Two static branches, so that each is planned against its own index (all users', one user's).
  if p_user_id is null then
    return query
      with next_task as (
        select t.id from public.tasks t
         where t.status = 'Queued' and not t.blocked
         order by t.created_at, t.id
         limit 1
         for update skip locked
      )
      update public.tasks t
         set status = 'In Progress', worker_id = p_worker_id, attempts = t.attempts + 1,
             updated_at = now(), generation_started_at = now(), claim_id = p_claim_id,
             lease_expires_at = now() + make_interval(secs => p_lease_seconds)
        from next_task
       where t.id = next_task.id
      returning t.id, t.params, t.task_type, t.project_id, t.worker_id, t.attempts, t.lease_expires_at;
  else
    return query
      with next_task as (
        select t.id from public.tasks t
         where t.status = 'Queued' and not t.blocked and t.user_id = p_user_id
         order by t.created_at, t.id
         limit 1
         for update skip locked
      )
      update public.tasks t
         set status = 'In Progress', worker_id = p_worker_id, attempts = t.attempts + 1,
             updated_at = now(), generation_started_at = now(), claim_id = p_claim_id,
             lease_expires_at = now() + make_interval(secs => p_lease_seconds)
        from next_task
       where t.id = next_task.id
      returning t.id, t.params, t.task_type, t.project_id, t.worker_id, t.attempts, t.lease_expires_at;
  end if;
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
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  perform public.taskclaim_check_claim(p_worker_ids, p_lease_seconds);
  -- Two static branches, so that each is planned against its own index (all users', one user's).
  if p_user_id is null then
    return query
      with picked as (
        select t.id, t.created_at from public.tasks t
         where t.status = 'Queued' and not t.blocked
         order by t.created_at, t.id
         limit cardinality(p_worker_ids)
         for update skip locked
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
  else
    return query
      with picked as (
        select t.id, t.created_at from public.tasks t
         where t.status = 'Queued' and not t.blocked and t.user_id = p_user_id
         order by t.created_at, t.id
         limit cardinality(p_worker_ids)
         for update skip locked
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

create or replace function public.taskclaim_claim_batch(
  p_worker_ids    text[],
  p_user_id       uuid,
  p_lease_seconds integer,
  p_task_types    text[]
) returns table (
  ordinal integer, task_id uuid, params jsonb, task_type text, project_id uuid,
  worker_id text, attempt integer, lease_expires_at timestamptz
)
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  if p_task_types is null then
    return query select * from public.taskclaim_claim_batch(p_worker_ids, p_user_id, p_lease_seconds);
    return;
  end if;
  perform public.taskclaim_check_claim(p_worker_ids, p_lease_seconds, p_task_types);
  -- The statement is planned per call, so the planner sees whose tasks and how many types; only the
  -- constant fragments below vary, every value is a parameter.
  return query execute
    'with picked as (
       select t.id, t.created_at from public.tasks t
        where t.status = ''Queued'' and not t.blocked and '
    || case when cardinality(p_task_types) = 1 then 't.task_type = ($4)[1]' else 't.task_type = any($4)' end
    || case when p_user_id is null then '' else ' and t.user_id = $2' end
    || '
        order by t.created_at, t.id
        limit cardinality($1)
        for update skip locked
     ), numbered as (
       select p.id, (row_number() over (order by p.created_at, p.id))::integer as n from picked p
     )
     update public.tasks t
        set status = ''In Progress'', worker_id = ($1)[numbered.n], attempts = t.attempts + 1,
            updated_at = now(), generation_started_at = now(), claim_id = null,
            lease_expires_at = now() + make_interval(secs => $3)
       from numbered
      where t.id = numbered.id
     returning numbered.n, t.id, t.params, t.task_type, t.project_id, t.worker_id, t.attempts,
               t.lease_expires_at'
    using p_worker_ids, p_user_id, p_lease_seconds, p_task_types;
end
$$;

-- A heartbeat without p_lease_seconds extends by the lease the task was last given. Every claim and
-- heartbeat sets updated_at to now() together with lease_expires_at = now() + its lease, and nothing
-- else touches a held task, so the difference of the two is that lease's length.
create or replace function public.taskclaim_heartbeat(
  p_task_id       uuid,
  p_worker_id     text,
  p_attempt       integer default null,
  p_lease_seconds integer default null,
  p_user_id       uuid default null
) returns timestamptz
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_expires timestamptz;
begin
  if p_lease_seconds is not null and p_lease_seconds not between 1 and 86400 then
    raise exception 'lease_seconds must be from 1 to 86400' using errcode = 'TC400';
  end if;
  update public.tasks t
     set lease_expires_at = now() + make_interval(secs => coalesce(
           p_lease_seconds,
           greatest(1, ceil(extract(epoch from t.lease_expires_at - t.updated_at)))::integer
         )),
         updated_at = now()
   where t.id = p_task_id and t.status = 'In Progress' and t.worker_id = p_worker_id
     and (p_attempt is null or t.attempts = p_attempt)
     and (p_user_id is null or t.user_id = p_user_id)
  returning t.lease_expires_at into v_expires;
  if not found then
    perform public.taskclaim_raise_not_held(p_task_id, p_user_id);
  end if;
  return v_expires;
end
$$;

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
  v_problem text := public.taskclaim_json_problem(p_result);
begin
  if v_problem is not null then
    raise exception 'result %', v_problem using errcode = 'TC400';
  end if;
  if length(p_output_location) not between 1 and 2048 then
    raise exception 'output_location must be a string of 1 to 2048 characters' using errcode = 'TC400';
  end if;
  return query
    update public.tasks t
       set status = 'Complete', result = p_result, output_location = p_output_location,
           generation_processed_at = now(), updated_at = now(), lease_expires_at = null
     where t.id = p_task_id and t.status = 'In Progress' and t.worker_id = p_worker_id
       and (p_attempt is null or t.attempts = p_attempt)
       and (p_user_id is null or t.user_id = p_user_id)
    returning t.id, t.status, t.generation_processed_at;
  if found then
    return;
  end if;
  return query
    select t.id, t.status, t.generation_processed_at from public.tasks t
     where t.id = p_task_id and t.status = 'Complete' and t.worker_id = p_worker_id
       and (p_attempt is null or t.attempts = p_attempt)
       and (p_user_id is null or t.user_id = p_user_id);
  if not found then
    perform public.taskclaim_raise_not_held(p_task_id, p_user_id);
  end if;
end
$$;

-- As 0700's, and an item whose result or output_location is refused gets its own TC400.
create or replace function public.taskclaim_complete_batch(
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
      select i.n::integer as n, i.task_id, i.worker_id, i.attempt, i.result, i.output_location,
             case when length(i.output_location) not between 1 and 2048
                  then 'output_location must be a string of 1 to 2048 characters'
                  else 'result ' || public.taskclaim_json_problem(i.result) end as problem
        from unnest(p_task_ids, p_worker_ids, p_attempts, p_results, p_output_locations)
             with ordinality as i(task_id, worker_id, attempt, result, output_location, n)
    ), done as (
      update public.tasks t
         set status = 'Complete', result = i.result, output_location = i.output_location,
             generation_processed_at = now(), updated_at = now(), lease_expires_at = null
        from items i
       where i.problem is null
         and t.id = i.task_id and t.status = 'In Progress' and t.worker_id = i.worker_id
         and (i.attempt is null or t.attempts = i.attempt)
         and (p_user_id is null or t.user_id = p_user_id)
      returning i.n, t.id, t.status, t.generation_processed_at
    )
    select d.n, d.id, d.status, d.generation_processed_at, null::text, null::text from done d
    union all
    select i.n, i.task_id, null::public.task_status, null::timestamptz, 'TC400', i.problem
      from items i
     where i.problem is not null
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
     where i.problem is null and not exists (select 1 from done d where d.n = i.n);
end
$$;

create or replace function public.taskclaim_fail(
  p_task_id   uuid,
  p_worker_id text,
  p_attempt   integer default null,
  p_error     text default null,
  p_retry     boolean default false,
  p_user_id   uuid default null
) returns table (task_id uuid, status public.task_status, attempts integer, max_attempts integer)
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  if length(p_error) not between 1 and 8192 then
    raise exception 'error must be a string of 1 to 8192 characters' using errcode = 'TC400';
  end if;
  return query
    update public.tasks t
       set status = case when p_retry and t.attempts < t.max_attempts
                         then 'Queued'::public.task_status else 'Failed'::public.task_status end,
           error = coalesce(p_error, 'failed by its worker'),
           generation_processed_at = case when p_retry and t.attempts < t.max_attempts
                                          then null else now() end,
           worker_id = case when p_retry and t.attempts < t.max_attempts then null else t.worker_id end,
           claim_id = null, lease_expires_at = null, updated_at = now()
     where t.id = p_task_id and t.status = 'In Progress' and t.worker_id = p_worker_id
       and (p_attempt is null or t.attempts = p_attempt)
       and (p_user_id is null or t.user_id = p_user_id)
    returning t.id, t.status, t.attempts, t.max_attempts;
  if not found then
    perform public.taskclaim_raise_not_held(p_task_id, p_user_id);
  end if;
end
$$;

create or replace function public.taskclaim_create_task(
  p_project_id      uuid,
  p_task_type       text,
  p_params          jsonb default '{}'::jsonb,
  p_dependant_on    uuid default null,
  p_idempotency_key text default null,
  p_user_id         uuid default null,
  p_max_attempts    integer default 3
) returns table (task_id uuid, status public.task_status, blocked boolean, created boolean)
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_owner   uuid;
  v_params  jsonb := coalesce(p_params, '{}'::jsonb);
  v_problem text := public.taskclaim_json_problem(p_params);
begin
  if p_task_type is null or length(p_task_type) not between 1 and 200 then
    raise exception 'task_type must be a string of 1 to 200 characters' using errcode = 'TC400';
  end if;
  if length(p_idempotency_key) not between 1 and 200 then
    raise exception 'idempotency_key must be a string of 1 to 200 characters' using errcode = 'TC400';
  end if;
  if p_max_attempts is null or p_max_attempts not between 1 and 1000 then
    raise exception 'max_attempts must be from 1 to 1000' using errcode = 'TC400';
  end if;
  if jsonb_typeof(v_params) <> 'object' then
    raise exception 'params must be a JSON object' using errcode = 'TC400';
  end if;
  if v_problem is not null then
    raise exception 'params %', v_problem using errcode = 'TC400';
  end if;
  select p.user_id into v_owner from public.projects p where p.id = p_project_id;
  if not found then
    raise exception 'project % not found', p_project_id using errcode = 'TC404';
  end if;
  if p_user_id is not null and v_owner <> p_user_id then
    raise exception 'project % belongs to another user', p_project_id using errcode = 'TC403';
  end if;
  if p_dependant_on is not null and not exists (
    select 1 from public.tasks t where t.id = p_dependant_on and t.user_id = v_owner
  ) then
    raise exception 'dependency % not found', p_dependant_on using errcode = 'TC400';
  end if;
  return query
    insert into public.tasks as t (project_id, task_type, params, dependant_on, idempotency_key, max_attempts)
    values (p_project_id, p_task_type, v_params, p_dependant_on, p_idempotency_key, p_max_attempts)
    on conflict (project_id, idempotency_key) where idempotency_key is not null do nothing
    returning t.id, t.status, t.blocked, true;
  if not found then
    return query
      select t.id, t.status, t.blocked, false from public.tasks t
       where t.project_id = p_project_id and t.idempotency_key = p_idempotency_key;
  end if;
end
$$;

-- Row Level Security without a WHERE clause. The UPDATE policy's USING is all that filters an UPDATE
-- that has no WHERE (the SELECT policy applies only to the columns a WHERE reads), so it must itself say
-- "own, Queued, unblocked"; column privileges keep every other column out of reach.
drop policy "update_own_to_in_progress" on public.tasks;
create policy "update_own_to_in_progress" on public.tasks
  for update to authenticated
  using (user_id = (select auth.uid()) and status = 'Queued' and not blocked)
  with check (user_id = (select auth.uid()) and status = 'In Progress' and worker_id is not null);
revoke update on public.tasks from authenticated;
grant update (status, worker_id) on public.tasks to authenticated;

-- A task moved to In Progress without a lease (by a user under RLS, or by hand) gets what a claim gives
-- it: a counted attempt and a lease of the default length, so the reaper recovers it if its worker dies.
-- The WHEN clause keeps the claim functions, which always set a lease, from ever calling it.
create function public.taskclaim_tasks_claimed_without_lease() returns trigger
  language plpgsql
  set search_path = ''
as $$
begin
  new.attempts := old.attempts + 1;
  new.updated_at := now();
  new.generation_started_at := now();
  new.claim_id := null;
  new.lease_expires_at := now() + make_interval(secs => 300);
  return new;
end
$$;

create trigger tasks_claimed_without_lease before update of status on public.tasks
  for each row
  when (old.status = 'Queued' and new.status = 'In Progress' and new.lease_expires_at is null)
  execute function public.taskclaim_tasks_claimed_without_lease();

-- A user's projects (and so their tasks) and tokens go with the user.
do $$
begin
  if to_regclass('auth.users') is not null then
    -- NOT VALID: rows made before this migration are not checked, but every new row is, and deleting a
    -- user cascades to all of them.
    alter table public.projects add constraint projects_user_id_fkey
      foreign key (user_id) references auth.users (id) on delete cascade not valid;
    alter table public.user_api_token add constraint user_api_token_user_id_fkey
      foreign key (user_id) references auth.users (id) on delete cascade not valid;
  end if;
end
$$;

create function public.taskclaim_delete_user(p_user_id uuid)
returns table (projects bigint, tasks bigint, tokens bigint)
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_tasks bigint;
  v_projects bigint;
  v_tokens bigint;
begin
  select count(*) into v_tasks from public.tasks t where t.user_id = p_user_id;
  delete from public.projects p where p.user_id = p_user_id;  -- its tasks go with it (on delete cascade)
  get diagnostics v_projects = row_count;
  delete from public.user_api_token k where k.user_id = p_user_id;
  get diagnostics v_tokens = row_count;
  return query select v_projects, v_tasks, v_tokens;
end
$$;

do $$
declare
  f text;
begin
  foreach f in array array[
    'public.taskclaim_json_problem(jsonb)',
    'public.taskclaim_check_claim(text[], integer, text[])',
    'public.taskclaim_delete_user(uuid)'
  ] loop
    execute format('revoke all on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
revoke all on function public.taskclaim_tasks_claimed_without_lease() from public, anon, authenticated;
