-- The queue's functions. Every one is SECURITY DEFINER with an empty search_path and may be executed by
-- service_role only: the HTTP service and trusted workers call them; users go through the service.
-- Errors carry SQLSTATEs of class TC that the service maps to HTTP: TC400, TC403, TC404, TC409.

-- The claim: the oldest ready task (of one user when p_user_id is set), locked with SKIP LOCKED,
-- moved to 'In Progress' under a lease and returned, all in one statement.
create function public.taskclaim_claim_next(
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
  if p_worker_id is null or p_worker_id = '' then
    raise exception 'worker_id must not be empty' using errcode = 'TC400';
  end if;
  if p_lease_seconds is null or p_lease_seconds < 1 then
    raise exception 'lease_seconds must be at least 1' using errcode = 'TC400';
  end if;
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

-- The claim with an optional idempotency key: a retried claim with the same p_claim_id returns the task
-- that the first one took (while it is still held) instead of taking a second one.
create function public.taskclaim_claim(
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
      null;  -- a concurrent claim with the same claim_id won; loop once to return its task
    end;
  end loop;
end
$$;

create function public.taskclaim_check_table(p_table_name text) returns void
  language plpgsql
  immutable
  set search_path = ''
as $$
begin
  if p_table_name is distinct from 'tasks' and p_table_name is distinct from 'public.tasks' then
    raise exception 'unknown task table: %', p_table_name using errcode = '42P01';
  end if;
end
$$;

-- The plan's two RPCs, with its signatures. They add worker_id, attempt and lease_expires_at to the
-- plan's four columns so that a worker on the direct-RPC path can heartbeat and complete, fenced.
create function public.func_claim_task(p_table_name text, p_worker_id text)
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
  return query select * from public.taskclaim_claim_next(p_worker_id, null, 300, null);
end
$$;

create function public.func_claim_user_task(p_table_name text, p_worker_id text, p_user_id uuid)
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
  return query select * from public.taskclaim_claim_next(p_worker_id, p_user_id, 300, null);
end
$$;

-- Why a fenced call did not match: the task is not there for this caller (TC404), or it is not held by
-- this worker and attempt any more (TC409).
create function public.taskclaim_raise_not_held(p_task_id uuid, p_user_id uuid) returns void
  language plpgsql
  set search_path = ''
as $$
declare
  v_status public.task_status;
  v_worker text;
  v_attempt integer;
begin
  select t.status, t.worker_id, t.attempts into v_status, v_worker, v_attempt
    from public.tasks t
   where t.id = p_task_id and (p_user_id is null or t.user_id = p_user_id);
  if not found then
    raise exception 'task % not found', p_task_id using errcode = 'TC404';
  end if;
  raise exception 'task % is not held by this worker (status %, worker %, attempt %)',
    p_task_id, v_status, coalesce(v_worker, '-'), v_attempt using errcode = 'TC409';
end
$$;

create function public.taskclaim_heartbeat(
  p_task_id       uuid,
  p_worker_id     text,
  p_attempt       integer default null,
  p_lease_seconds integer default 300,
  p_user_id       uuid default null
) returns timestamptz
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_expires timestamptz;
begin
  if p_lease_seconds is null or p_lease_seconds < 1 then
    raise exception 'lease_seconds must be at least 1' using errcode = 'TC400';
  end if;
  update public.tasks t
     set lease_expires_at = now() + make_interval(secs => p_lease_seconds), updated_at = now()
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

-- Complete, fenced to the holder. Repeating the same completion (its answer was lost) succeeds again.
create function public.taskclaim_complete(
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
begin
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

-- Fail, fenced to the holder. With p_retry and attempts left the task goes back to the queue.
create function public.taskclaim_fail(
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

-- Release: the holder gives the task back untouched (a worker shutting down); the attempt is not counted.
create function public.taskclaim_release(
  p_task_id   uuid,
  p_worker_id text,
  p_attempt   integer default null,
  p_user_id   uuid default null
) returns void
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  update public.tasks t
     set status = 'Queued', worker_id = null, claim_id = null, lease_expires_at = null,
         attempts = greatest(t.attempts - 1, 0), generation_started_at = null, updated_at = now()
   where t.id = p_task_id and t.status = 'In Progress' and t.worker_id = p_worker_id
     and (p_attempt is null or t.attempts = p_attempt)
     and (p_user_id is null or t.user_id = p_user_id);
  if not found then
    perform public.taskclaim_raise_not_held(p_task_id, p_user_id);
  end if;
end
$$;

-- Recovery: tasks whose lease ran out go back to the queue, or end Failed once max_attempts is reached.
create function public.taskclaim_reap(p_limit integer default 1000)
returns table (task_id uuid, status public.task_status, attempts integer)
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  return query
    with expired as (
      select t.id from public.tasks t
       where t.status = 'In Progress' and t.lease_expires_at < now()
       order by t.lease_expires_at
       limit p_limit
       for update skip locked
    )
    update public.tasks t
       set status = case when t.attempts >= t.max_attempts
                         then 'Failed'::public.task_status else 'Queued'::public.task_status end,
           error = format('lease expired on attempt %s of %s (worker %s)',
                          t.attempts, t.max_attempts, coalesce(t.worker_id, '-')),
           generation_processed_at = case when t.attempts >= t.max_attempts then now() end,
           worker_id = case when t.attempts >= t.max_attempts then t.worker_id end,
           claim_id = null, lease_expires_at = null, updated_at = now()
      from expired
     where t.id = expired.id
    returning t.id, t.status, t.attempts;
end
$$;

create function public.taskclaim_create_task(
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
  v_owner uuid;
begin
  if p_task_type is null or p_task_type = '' then
    raise exception 'task_type must not be empty' using errcode = 'TC400';
  end if;
  if p_max_attempts is null or p_max_attempts < 1 then
    raise exception 'max_attempts must be at least 1' using errcode = 'TC400';
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
    values (p_project_id, p_task_type, coalesce(p_params, '{}'::jsonb), p_dependant_on, p_idempotency_key,
            p_max_attempts)
    on conflict (project_id, idempotency_key) where idempotency_key is not null do nothing
    returning t.id, t.status, t.blocked, true;
  if not found then
    return query
      select t.id, t.status, t.blocked, false from public.tasks t
       where t.project_id = p_project_id and t.idempotency_key = p_idempotency_key;
  end if;
end
$$;

-- Counts per task_type; a user's own only when p_user_id is set.
create function public.taskclaim_task_counts(p_user_id uuid default null)
returns table (
  task_type text, queued bigint, blocked bigint, in_progress bigint,
  complete bigint, failed bigint, cancelled bigint
)
  language sql
  stable
  security definer
  set search_path = ''
as $$
  select t.task_type,
         count(*) filter (where t.status = 'Queued' and not t.blocked),
         count(*) filter (where t.status = 'Queued' and t.blocked),
         count(*) filter (where t.status = 'In Progress'),
         count(*) filter (where t.status = 'Complete'),
         count(*) filter (where t.status = 'Failed'),
         count(*) filter (where t.status = 'Cancelled')
    from public.tasks t
   where p_user_id is null or t.user_id = p_user_id
   group by t.task_type
   order by t.task_type
$$;

-- A personal access token, by the SHA-256 hex of its value: its user while it is neither revoked nor expired.
create function public.taskclaim_token_user(p_jti_hash text)
returns table (user_id uuid, expires_at timestamptz)
  language sql
  security definer
  set search_path = ''
as $$
  update public.user_api_token k set last_used_at = now()
   where k.jti_hash = p_jti_hash and k.revoked_at is null
     and (k.expires_at is null or k.expires_at > now())
  returning k.user_id, k.expires_at
$$;

do $$
declare
  f text;
begin
  foreach f in array array[
    'public.taskclaim_claim_next(text, uuid, integer, uuid)',
    'public.taskclaim_claim(text, uuid, integer, uuid)',
    'public.taskclaim_check_table(text)',
    'public.func_claim_task(text, text)',
    'public.func_claim_user_task(text, text, uuid)',
    'public.taskclaim_raise_not_held(uuid, uuid)',
    'public.taskclaim_heartbeat(uuid, text, integer, integer, uuid)',
    'public.taskclaim_complete(uuid, text, integer, jsonb, text, uuid)',
    'public.taskclaim_fail(uuid, text, integer, text, boolean, uuid)',
    'public.taskclaim_release(uuid, text, integer, uuid)',
    'public.taskclaim_reap(integer)',
    'public.taskclaim_create_task(uuid, text, jsonb, uuid, text, uuid, integer)',
    'public.taskclaim_task_counts(uuid)',
    'public.taskclaim_token_user(text)'
  ] loop
    execute format('revoke all on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
