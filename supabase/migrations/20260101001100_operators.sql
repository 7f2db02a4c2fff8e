-- Operators see and act on single tasks: get, list (keyset pages), cancel and retry, each scoped like a
-- claim (p_user_id null: the service, every user's tasks; else that user's only) and each a SECURITY
-- DEFINER function for service_role, so the direct path can do what the HTTP routes do. The functions
-- answer with JSON text, the same bytes for the Python service and the Edge Functions.
--
-- Listing newest (or oldest) first reads an index in (created_at, id) order and stops after a page: cheap
-- however many tasks have finished. A user's list reads (user_id, created_at, id). Both indexes are
-- full, so every insert and every status change writes them too (measured in BENCHMARKS.md, "The cost
-- of the operators' indexes"); failed and cancelled tasks, the ones an operator looks for among
-- millions of finished ones, also get a small partial index.

create index tasks_created_idx on public.tasks (created_at, id);
create index tasks_user_created_idx on public.tasks (user_id, created_at, id);
create index tasks_ended_badly_idx on public.tasks (created_at, id) where status in ('Failed', 'Cancelled');

-- One task as the operators' routes show it: every field but claim_id (the claimer's own retry key);
-- params and result only with p_with_payload (a page of 500 tasks must not carry 500 results).
create function public.taskclaim_task_json(p_task public.tasks, p_with_payload boolean)
  returns jsonb
  language sql
  immutable
  set search_path = ''
as $$
  select jsonb_build_object(
    'task_id', p_task.id, 'status', p_task.status, 'task_type', p_task.task_type,
    'project_id', p_task.project_id, 'user_id', p_task.user_id, 'dependant_on', p_task.dependant_on,
    'blocked', p_task.blocked, 'attempts', p_task.attempts, 'max_attempts', p_task.max_attempts,
    'error', p_task.error, 'output_location', p_task.output_location, 'worker_id', p_task.worker_id,
    'lease_expires_at', p_task.lease_expires_at, 'idempotency_key', p_task.idempotency_key,
    'created_at', p_task.created_at, 'updated_at', p_task.updated_at,
    'generation_started_at', p_task.generation_started_at,
    'generation_processed_at', p_task.generation_processed_at)
  || case when p_with_payload
          then jsonb_build_object('params', p_task.params, 'result', p_task.result)
          else '{}'::jsonb end
$$;

create function public.taskclaim_get_task(p_task_id uuid, p_user_id uuid default null)
  returns text
  language plpgsql
  stable
  security definer
  set search_path = ''
as $$
declare
  v_json text;
begin
  select public.taskclaim_task_json(t, true)::text into v_json
    from public.tasks t
   where t.id = p_task_id and (p_user_id is null or t.user_id = p_user_id);
  if v_json is null then
    raise exception 'task % not found', p_task_id using errcode = 'TC404';
  end if;
  return v_json;
end
$$;

-- A page of tasks, newest first (or oldest with p_oldest_first), after p_cursor (the cursor of the last
-- task of the previous page). Each row carries its own cursor: "<created_at in microseconds>:<id>".
-- Only the filters given are in the statement (EXECUTE), so each is planned for what it asks.
create function public.taskclaim_list_tasks(
  p_user_id      uuid default null,
  p_status       public.task_status default null,
  p_task_type    text default null,
  p_project_id   uuid default null,
  p_worker_id    text default null,
  p_oldest_first boolean default false,
  p_cursor       text default null,
  p_limit        integer default 50
) returns table (cursor text, task text)
  language plpgsql
  stable
  security definer
  set search_path = ''
as $$
declare
  v_after_at timestamptz;
  v_after_id uuid;
  v_sql text;
  v_order text := case when p_oldest_first then 'asc' else 'desc' end;
  v_cmp text := case when p_oldest_first then '>' else '<' end;
begin
  if p_limit is null or p_limit not between 1 and 500 then
    raise exception 'limit must be from 1 to 500' using errcode = 'TC400';
  end if;
  if length(p_task_type) not between 1 and 200 or length(p_worker_id) not between 1 and 200 then
    raise exception 'task_type and worker_id must be strings of 1 to 200 characters' using errcode = 'TC400';
  end if;
  if p_cursor is not null then
    if p_cursor !~ '^-?\d{1,20}:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
      raise exception 'cursor is not one this function returned' using errcode = 'TC400';
    end if;
    v_after_at := timestamptz 'epoch' + (split_part(p_cursor, ':', 1) || ' microseconds')::interval;
    v_after_id := split_part(p_cursor, ':', 2)::uuid;
  end if;
  v_sql := 'select ((extract(epoch from t.created_at) * 1000000)::bigint)::text || '':'' || t.id::text,'
        || ' public.taskclaim_task_json(t, false)::text from public.tasks t where true';
  if p_user_id is not null then
    -- A range, and user_id in the ORDER BY, so that only tasks_user_created_idx gives the order.
    v_sql := v_sql || ' and t.user_id >= $1 and t.user_id <= $1';
  end if;
  if p_status is not null then
    v_sql := v_sql || ' and t.status = $2';
  end if;
  if p_task_type is not null then
    v_sql := v_sql || ' and t.task_type = $3';
  end if;
  if p_project_id is not null then
    v_sql := v_sql || ' and t.project_id = $4';
  end if;
  if p_worker_id is not null then
    v_sql := v_sql || ' and t.worker_id = $5';
  end if;
  if p_cursor is not null then
    v_sql := v_sql || format(' and (t.created_at, t.id) %s ($6, $7)', v_cmp);
  end if;
  v_sql := v_sql || case when p_user_id is not null
                         then format(' order by t.user_id %1$s, t.created_at %1$s, t.id %1$s', v_order)
                         else format(' order by t.created_at %1$s, t.id %1$s', v_order) end
        || ' limit $8';
  return query execute v_sql
    using p_user_id, p_status, p_task_type, p_project_id, p_worker_id, v_after_at, v_after_id, p_limit;
end
$$;

-- Cancel a task that has not ended: Queued (blocked or not) or In Progress. Its holder, if any, gets 409
-- when it later completes, fails, heartbeats or releases (they all require In Progress); its dependants
-- are cancelled by the tasks_after_end trigger, as for any task that will never complete.
create function public.taskclaim_cancel_task(
  p_task_id uuid, p_reason text default null, p_user_id uuid default null
) returns text
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_status public.task_status;
begin
  if length(p_reason) not between 1 and 8192 then
    raise exception 'reason must be a string of 1 to 8192 characters' using errcode = 'TC400';
  end if;
  update public.tasks t
     set status = 'Cancelled', error = coalesce(p_reason, 'cancelled by an operator'), blocked = false,
         claim_id = null, lease_expires_at = null, generation_processed_at = now(), updated_at = now()
   where t.id = p_task_id and t.status in ('Queued', 'In Progress')
     and (p_user_id is null or t.user_id = p_user_id);
  if not found then
    select t.status into v_status
      from public.tasks t where t.id = p_task_id and (p_user_id is null or t.user_id = p_user_id);
    if not found then
      raise exception 'task % not found', p_task_id using errcode = 'TC404';
    end if;
    raise exception 'task % has already ended (%)', p_task_id, v_status using errcode = 'TC409';
  end if;
  return public.taskclaim_get_task(p_task_id, p_user_id);
end
$$;

-- Retry a task that ended without completing (Failed or Cancelled): Queued again with its attempts reset.
-- The dependants that were cancelled because of it (and theirs, and so on) come back too, blocked until it
-- completes. A task whose own dependency failed or was cancelled cannot run: retry that one first (409).
create function public.taskclaim_retry_task(p_task_id uuid, p_user_id uuid default null)
  returns text
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_task public.tasks;
  v_parent public.task_status;
  v_revived integer;
begin
  select * into v_task
    from public.tasks t
   where t.id = p_task_id and (p_user_id is null or t.user_id = p_user_id)
   for update;
  if not found then
    raise exception 'task % not found', p_task_id using errcode = 'TC404';
  end if;
  if v_task.status not in ('Failed', 'Cancelled') then
    raise exception 'task % is %: only a Failed or Cancelled task can be retried', p_task_id, v_task.status
      using errcode = 'TC409';
  end if;
  if v_task.dependant_on is not null then
    select t.status into v_parent from public.tasks t where t.id = v_task.dependant_on;
    if v_parent in ('Failed', 'Cancelled') then
      raise exception 'task % depends on task %, which is %: retry that one first',
        p_task_id, v_task.dependant_on, v_parent using errcode = 'TC409';
    end if;
  end if;
  -- The dependants first, while they are still Cancelled (the root's update would not touch them).
  with recursive revived(id) as (
    select d.id from public.tasks d
     where d.dependant_on = p_task_id and d.status = 'Cancelled'
       and d.error = format('dependency %s is %s', p_task_id, v_task.status)
    union all
    select d.id from public.tasks d join revived r on d.dependant_on = r.id
     where d.status = 'Cancelled' and d.error = format('dependency %s is Cancelled', r.id)
  )
  update public.tasks t
     set status = 'Queued', blocked = true, attempts = 0, error = null, result = null, worker_id = null,
         claim_id = null, lease_expires_at = null, generation_started_at = null,
         generation_processed_at = null, updated_at = now()
    from revived r where t.id = r.id;
  get diagnostics v_revived = row_count;
  update public.tasks t
     set status = 'Queued', blocked = coalesce(v_parent <> 'Complete', false), attempts = 0, error = null,
         result = null, worker_id = null, claim_id = null, lease_expires_at = null,
         generation_started_at = null, generation_processed_at = null, updated_at = now()
   where t.id = p_task_id;
  return (public.taskclaim_get_task(p_task_id, p_user_id)::jsonb
          || jsonb_build_object('dependants_requeued', v_revived))::text;
end
$$;

revoke all on function public.taskclaim_task_json(public.tasks, boolean) from public, anon, authenticated;
revoke all on function public.taskclaim_get_task(uuid, uuid) from public, anon, authenticated;
revoke all on function public.taskclaim_list_tasks(uuid, public.task_status, text, uuid, text, boolean, text, integer)
  from public, anon, authenticated;
revoke all on function public.taskclaim_cancel_task(uuid, text, uuid) from public, anon, authenticated;
revoke all on function public.taskclaim_retry_task(uuid, uuid) from public, anon, authenticated;
grant execute on function public.taskclaim_get_task(uuid, uuid) to service_role;
grant execute on function public.taskclaim_list_tasks(uuid, public.task_status, text, uuid, text, boolean, text, integer)
  to service_role;
grant execute on function public.taskclaim_cancel_task(uuid, text, uuid) to service_role;
grant execute on function public.taskclaim_retry_task(uuid, uuid) to service_role;
