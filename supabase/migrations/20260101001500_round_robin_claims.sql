-- Fairness between users (issue 13): service claims that take users in turn instead of the oldest task
-- overall, so one user's backlog of 100,000 tasks cannot hold every worker while another's ten wait.
--
-- The turn is a cursor the caller keeps (the last user it served; the service keeps one per process), so
-- the claim writes nothing but the tasks it claims. Each claimed task is two index scans of
-- tasks_ready_user_idx: the first user after the cursor with a ready task, then that user's oldest.
-- Past the last user the cursor wraps around; a whole pass that claims nothing ends the claim (every
-- remaining ready task is locked by another claim). The answer has each task's user_id, so the caller
-- can move its cursor to the last one.

create function public.taskclaim_claim_round_robin(
  p_worker_ids    text[],
  p_after_user    uuid,
  p_lease_seconds integer
) returns table (
  ordinal integer, task_id uuid, params jsonb, task_type text, project_id uuid,
  worker_id text, attempt integer, lease_expires_at timestamptz, user_id uuid
)
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_wanted integer := cardinality(p_worker_ids);
  v_user   uuid := p_after_user;
  v_next   uuid;
  v_n      integer := 0;
  v_wraps  integer := 0;
  v_claimed_this_pass boolean := false;
begin
  perform public.taskclaim_check_claim(p_worker_ids, p_lease_seconds, null);
  if v_wanted > 100 then
    raise exception 'a claim takes at most 100 tasks' using errcode = 'TC400';
  end if;
  while v_n < v_wanted loop
    if v_user is null then
      select t.user_id into v_next from public.tasks t
       where t.status = 'Queued' and not t.blocked
       order by t.user_id limit 1;
    else
      select t.user_id into v_next from public.tasks t
       where t.status = 'Queued' and not t.blocked and t.user_id > v_user
       order by t.user_id limit 1;
    end if;
    if v_next is null then  -- past the last user: around again, unless a whole pass claimed nothing
      exit when v_user is null or (v_wraps > 0 and not v_claimed_this_pass);
      v_wraps := v_wraps + 1;
      v_claimed_this_pass := false;
      v_user := null;
      continue;
    end if;
    v_user := v_next;
    return query
      with picked as (
        select t.id from public.tasks t
         where t.status = 'Queued' and not t.blocked and t.user_id >= v_next and t.user_id <= v_next
         order by t.user_id, t.created_at, t.id
         limit 1
         for update skip locked
      )
      update public.tasks t
         set status = 'In Progress', worker_id = p_worker_ids[v_n + 1], attempts = t.attempts + 1,
             updated_at = now(), generation_started_at = now(), claim_id = null,
             lease_expires_at = now() + make_interval(secs => p_lease_seconds)
        from picked
       where t.id = picked.id
      returning v_n + 1, t.id, t.params, t.task_type, t.project_id, t.worker_id, t.attempts,
                t.lease_expires_at, t.user_id;
    if found then
      v_n := v_n + 1;
      v_claimed_this_pass := true;
    end if;
  end loop;
end
$$;
revoke all on function public.taskclaim_claim_round_robin(text[], uuid, integer) from public, anon, authenticated;
grant execute on function public.taskclaim_claim_round_robin(text[], uuid, integer) to service_role;
