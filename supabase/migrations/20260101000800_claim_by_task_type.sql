-- Claims filtered by task_type: a worker that can run only some kinds of task claims only those.
--
-- A fourth argument to taskclaim_claim_batch, as a new overload: the three-argument form stays, unchanged,
-- for servers of the previous release while a deployment rolls. p_task_types null means every type.
-- For the service, one type is one scan of tasks_ready_type_idx (ready rows only, like the claim's other
-- indexes); several types, or one user's tasks of a type, are left to the planner, which sees the values:
-- a scan of the ready (or the user's ready) index that skips other types' rows, or of the type index.
create index tasks_ready_type_idx on public.tasks (task_type, created_at, id)
  where status = 'Queued' and not blocked;

create function public.taskclaim_claim_batch(
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
  if cardinality(p_task_types) = 0 or array_position(p_task_types, null) is not null then
    raise exception 'task_types must be a non-empty list of task types' using errcode = 'TC400';
  end if;
  if p_worker_ids is null or cardinality(p_worker_ids) = 0
     or array_position(p_worker_ids, null) is not null or array_position(p_worker_ids, '') is not null then
    raise exception 'worker_ids must be non-empty strings' using errcode = 'TC400';
  end if;
  if p_lease_seconds is null or p_lease_seconds < 1 then
    raise exception 'lease_seconds must be at least 1' using errcode = 'TC400';
  end if;
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
revoke all on function public.taskclaim_claim_batch(text[], uuid, integer, text[]) from public, anon, authenticated;
grant execute on function public.taskclaim_claim_batch(text[], uuid, integer, text[]) to service_role;
