-- A batch of claims in one statement: the service coalesces concurrent claim requests of the same scope
-- (the service, or one user) and lease into one call, so that one round trip and one commit serve many
-- workers. Row n of the answer goes to p_worker_ids[n]; fewer rows than workers means the queue ran out.

create function public.taskclaim_claim_batch(
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
  if p_worker_ids is null or cardinality(p_worker_ids) = 0
     or array_position(p_worker_ids, null) is not null or array_position(p_worker_ids, '') is not null then
    raise exception 'worker_ids must be non-empty strings' using errcode = 'TC400';
  end if;
  if p_lease_seconds is null or p_lease_seconds < 1 then
    raise exception 'lease_seconds must be at least 1' using errcode = 'TC400';
  end if;
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

revoke all on function public.taskclaim_claim_batch(text[], uuid, integer) from public, anon, authenticated;
grant execute on function public.taskclaim_claim_batch(text[], uuid, integer) to service_role;
