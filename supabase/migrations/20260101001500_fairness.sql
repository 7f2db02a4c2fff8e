-- Fairness between users (issue 13): service claims that take users in turn instead of the oldest task
-- overall, so one user's backlog of 100,000 tasks cannot hold every worker while another's ten wait; and a
-- cap on how many tasks one user may have in progress (TASKCLAIM_MAX_IN_PROGRESS_PER_USER, off by default).
--
-- The turn is a cursor the caller keeps (the last user it served; the service keeps one per process), so
-- the claim writes nothing but the tasks it claims. Each claimed task is two index scans of
-- tasks_ready_user_idx: the first user after the cursor with a ready task, then that user's oldest.
-- Past the last user the cursor wraps around; a whole pass that claims nothing ends the claim (every
-- remaining ready task is locked by another claim, or every user is at the cap). The answer has each
-- task's user_id, so the caller can move its cursor to the last one.
--
-- The cap is counted on tasks_in_progress_user_idx (at most p_max_in_progress entries read). A user's
-- claims under a cap hold a transaction-level advisory lock on that user, so concurrent claims cannot
-- overshoot it; a round-robin claim skips a user whose lock another claim holds.

-- generation_started_at in the predicate keeps the index out of every other statement's plan: no other
-- statement names that column, so none implies the predicate. Otherwise, with statistics that believe
-- nothing is in progress, a completion by id would read all of the user's entries here instead of the
-- primary key, and the reaper all in-progress entries instead of the expired ones of the lease index
-- (as migration 1200 found for the lease index). A claim sets generation_started_at on every task it takes.
create index tasks_in_progress_user_idx on public.tasks (user_id)
  where status = 'In Progress' and generation_started_at is not null;

-- How many more tasks p_user may take before holding p_cap in progress (0 at or over the cap).
create function public.taskclaim_room(p_user uuid, p_cap integer) returns integer
  language sql
  stable
  set search_path = ''
as $$
  select greatest(0, p_cap - (select count(*) from (
    select 1 from public.tasks t
     where t.user_id = p_user and t.status = 'In Progress' and t.generation_started_at is not null
     limit p_cap
  ) held))::integer
$$;
revoke all on function public.taskclaim_room(uuid, integer) from public, anon, authenticated;

-- The advisory lock of one user's capped claims (an arbitrary 64-bit key per user).
create function public.taskclaim_user_lock_key(p_user uuid) returns bigint
  language sql
  immutable
  set search_path = ''
as $$
  select hashtextextended('taskclaim user ' || p_user::text, 0)
$$;
revoke all on function public.taskclaim_user_lock_key(uuid) from public, anon, authenticated;

create function public.taskclaim_claim_round_robin(
  p_worker_ids       text[],
  p_after_user       uuid,
  p_lease_seconds    integer,
  p_max_in_progress  integer default null
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
  if p_max_in_progress is not null and p_max_in_progress < 1 then
    raise exception 'max_in_progress must be at least 1' using errcode = 'TC400';
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
    if p_max_in_progress is not null and (
      not pg_try_advisory_xact_lock(public.taskclaim_user_lock_key(v_next))
      or public.taskclaim_room(v_next, p_max_in_progress) = 0
    ) then
      continue;  -- another claim is serving this user, or the user is at the cap: the next user
    end if;
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
revoke all on function public.taskclaim_claim_round_robin(text[], uuid, integer, integer)
  from public, anon, authenticated;
grant execute on function public.taskclaim_claim_round_robin(text[], uuid, integer, integer) to service_role;

-- A user's claim under the cap: taskclaim_claim_core for as many tasks as the user has room for (with a
-- claim_id, taskclaim_claim). The retry of a claim_id that already holds a task gets that task, as
-- without a cap.
create function public.taskclaim_claim_user_capped(
  p_worker_ids      text[],
  p_user_id         uuid,
  p_lease_seconds   integer,
  p_task_types      text[],
  p_claim_id        uuid,
  p_max_in_progress integer
) returns table (
  ordinal integer, task_id uuid, params jsonb, task_type text, project_id uuid,
  worker_id text, attempt integer, lease_expires_at timestamptz
)
  language plpgsql
  security definer
  set search_path = ''
as $$
declare
  v_room integer;
begin
  if p_user_id is null or p_max_in_progress is null or p_max_in_progress < 1 then
    raise exception 'a capped claim needs a user and a cap of at least 1' using errcode = 'TC400';
  end if;
  perform public.taskclaim_check_claim(p_worker_ids, p_lease_seconds, p_task_types);
  if p_claim_id is not null and (cardinality(p_worker_ids) <> 1 or p_task_types is not null) then
    raise exception 'a claim_id names the claim of one task, of any type' using errcode = 'TC400';
  end if;
  -- The retry of a claim_id that holds (or held) a task is answered as taskclaim_claim answers it.
  if p_claim_id is null or not exists (select 1 from public.tasks t where t.claim_id = p_claim_id) then
    perform pg_advisory_xact_lock(public.taskclaim_user_lock_key(p_user_id));
    v_room := least(cardinality(p_worker_ids), public.taskclaim_room(p_user_id, p_max_in_progress));
    if v_room = 0 then
      return;
    end if;
  end if;
  if p_claim_id is not null then
    return query select 1, c.* from public.taskclaim_claim(p_worker_ids[1], p_user_id, p_lease_seconds,
                                                           p_claim_id) c;
    return;
  end if;
  return query select * from public.taskclaim_claim_core(p_worker_ids[1:v_room], p_user_id, p_lease_seconds,
                                                          p_task_types, null);
end
$$;
revoke all on function public.taskclaim_claim_user_capped(text[], uuid, integer, text[], uuid, integer)
  from public, anon, authenticated;
grant execute on function public.taskclaim_claim_user_capped(text[], uuid, integer, text[], uuid, integer)
  to service_role;
