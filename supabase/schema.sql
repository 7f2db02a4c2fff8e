-- The current schema of taskclaim: what supabase/migrations leave in a database, written out by
-- `./dev schema` (pg_dump of the public and auth schemas). Read it to see every table, index, function,
-- policy and grant as it is now; change the schema through a new migration, never here:
--
--   1. Copy a function whole into a new migration (supabase/migrations/<14 digits>_<name>.sql) and change
--      it there with CREATE OR REPLACE; the older migrations stay as they were (they are history).
--   2. Run `./dev schema` and commit this file with the migration.
--
-- tests/integration/test_schema_snapshot.py fails while this file and the migrations differ.

--
-- PostgreSQL database dump
--


SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: auth; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA IF NOT EXISTS auth;


--
-- Name: public; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA IF NOT EXISTS public;


--
-- Name: SCHEMA public; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON SCHEMA public IS 'standard public schema';


--
-- Name: task_status; Type: TYPE; Schema: public; Owner: -
--

CREATE TYPE public.task_status AS ENUM (
    'Queued',
    'In Progress',
    'Complete',
    'Failed',
    'Cancelled'
);


--
-- Name: jwt(); Type: FUNCTION; Schema: auth; Owner: -
--

CREATE FUNCTION auth.jwt() RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$
        select coalesce(
          nullif(current_setting('request.jwt.claim', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')
        )::jsonb
      $$;


--
-- Name: role(); Type: FUNCTION; Schema: auth; Owner: -
--

CREATE FUNCTION auth.role() RETURNS text
    LANGUAGE sql STABLE
    AS $$
        select coalesce(
          nullif(current_setting('request.jwt.claim.role', true), ''),
          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
        )::text
      $$;


--
-- Name: uid(); Type: FUNCTION; Schema: auth; Owner: -
--

CREATE FUNCTION auth.uid() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$
        select coalesce(
          nullif(current_setting('request.jwt.claim.sub', true), ''),
          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
        )::uuid
      $$;


--
-- Name: func_claim_task(text, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.func_claim_task(p_table_name text, p_worker_id text) RETURNS TABLE(task_id uuid, params jsonb, task_type text, project_id uuid, worker_id text, attempt integer, lease_expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
begin
  perform public.taskclaim_check_table(p_table_name);
  return query
    select c.task_id, c.params, c.task_type, c.project_id, c.worker_id, c.attempt, c.lease_expires_at
      from public.taskclaim_claim_core(array[p_worker_id], null, 300, null, null) c;
end
$$;


--
-- Name: func_claim_user_task(text, text, uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.func_claim_user_task(p_table_name text, p_worker_id text, p_user_id uuid) RETURNS TABLE(task_id uuid, params jsonb, task_type text, project_id uuid, worker_id text, attempt integer, lease_expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_cancel_task(uuid, text, uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_cancel_task(p_task_id uuid, p_reason text DEFAULT NULL::text, p_user_id uuid DEFAULT NULL::uuid) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_check_claim(text[], integer, text[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_check_claim(p_worker_ids text[], p_lease_seconds integer, p_task_types text[] DEFAULT NULL::text[]) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_check_table(text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_check_table(p_table_name text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO ''
    AS $$
begin
  if p_table_name is distinct from 'tasks' and p_table_name is distinct from 'public.tasks' then
    raise exception 'unknown task table: %', p_table_name using errcode = '42P01';
  end if;
end
$$;


--
-- Name: taskclaim_claim(text, uuid, integer, uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_claim(p_worker_id text, p_user_id uuid DEFAULT NULL::uuid, p_lease_seconds integer DEFAULT 300, p_claim_id uuid DEFAULT NULL::uuid) RETURNS TABLE(task_id uuid, params jsonb, task_type text, project_id uuid, worker_id text, attempt integer, lease_expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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
      null;  -- a concurrent claim with the same claim_id won, or an ended claim holds it: look again
    end;
  end loop;
  raise exception 'claim_id % belongs to a claim that has ended', p_claim_id using errcode = 'TC409';
end
$$;


--
-- Name: taskclaim_claim_batch(text[], uuid, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_claim_batch(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer) RETURNS TABLE(ordinal integer, task_id uuid, params jsonb, task_type text, project_id uuid, worker_id text, attempt integer, lease_expires_at timestamp with time zone)
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO ''
    AS $$
  select * from public.taskclaim_claim_core(p_worker_ids, p_user_id, p_lease_seconds, null, null)
$$;


--
-- Name: taskclaim_claim_batch(text[], uuid, integer, text[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_claim_batch(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer, p_task_types text[]) RETURNS TABLE(ordinal integer, task_id uuid, params jsonb, task_type text, project_id uuid, worker_id text, attempt integer, lease_expires_at timestamp with time zone)
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO ''
    AS $$
  select * from public.taskclaim_claim_core(p_worker_ids, p_user_id, p_lease_seconds, p_task_types, null)
$$;


--
-- Name: taskclaim_claim_core(text[], uuid, integer, text[], uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_claim_core(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer, p_task_types text[], p_claim_id uuid) RETURNS TABLE(ordinal integer, task_id uuid, params jsonb, task_type text, project_id uuid, worker_id text, attempt integer, lease_expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $_$
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
$_$;


--
-- Name: taskclaim_claim_next(text, uuid, integer, uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_claim_next(p_worker_id text, p_user_id uuid, p_lease_seconds integer, p_claim_id uuid) RETURNS TABLE(task_id uuid, params jsonb, task_type text, project_id uuid, worker_id text, attempt integer, lease_expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
begin
  return query
    select c.task_id, c.params, c.task_type, c.project_id, c.worker_id, c.attempt, c.lease_expires_at
      from public.taskclaim_claim_core(array[p_worker_id], p_user_id, p_lease_seconds, null, p_claim_id) c;
end
$$;


--
-- Name: taskclaim_claim_round_robin(text[], uuid, integer, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_claim_round_robin(p_worker_ids text[], p_after_user uuid, p_lease_seconds integer, p_max_in_progress integer DEFAULT NULL::integer) RETURNS TABLE(ordinal integer, task_id uuid, params jsonb, task_type text, project_id uuid, worker_id text, attempt integer, lease_expires_at timestamp with time zone, user_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_claim_user_capped(text[], uuid, integer, text[], uuid, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_claim_user_capped(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer, p_task_types text[], p_claim_id uuid, p_max_in_progress integer) RETURNS TABLE(ordinal integer, task_id uuid, params jsonb, task_type text, project_id uuid, worker_id text, attempt integer, lease_expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_complete(uuid, text, integer, jsonb, text, uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_complete(p_task_id uuid, p_worker_id text, p_attempt integer DEFAULT NULL::integer, p_result jsonb DEFAULT NULL::jsonb, p_output_location text DEFAULT NULL::text, p_user_id uuid DEFAULT NULL::uuid) RETURNS TABLE(task_id uuid, status public.task_status, generation_processed_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_complete_batch(uuid[], text[], integer[], jsonb[], text[], uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_complete_batch(p_task_ids uuid[], p_worker_ids text[], p_attempts integer[], p_results jsonb[], p_output_locations text[], p_user_id uuid DEFAULT NULL::uuid) RETURNS TABLE(ordinal integer, task_id uuid, status public.task_status, generation_processed_at timestamp with time zone, error_code text, error text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_create_task(uuid, text, jsonb, uuid, text, uuid, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_create_task(p_project_id uuid, p_task_type text, p_params jsonb DEFAULT '{}'::jsonb, p_dependant_on uuid DEFAULT NULL::uuid, p_idempotency_key text DEFAULT NULL::text, p_user_id uuid DEFAULT NULL::uuid, p_max_attempts integer DEFAULT 3) RETURNS TABLE(task_id uuid, status public.task_status, blocked boolean, created boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_delete_user(uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_delete_user(p_user_id uuid) RETURNS TABLE(projects bigint, tasks bigint, tokens bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_fail(uuid, text, integer, text, boolean, uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_fail(p_task_id uuid, p_worker_id text, p_attempt integer DEFAULT NULL::integer, p_error text DEFAULT NULL::text, p_retry boolean DEFAULT false, p_user_id uuid DEFAULT NULL::uuid) RETURNS TABLE(task_id uuid, status public.task_status, attempts integer, max_attempts integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_get_task(uuid, uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_get_task(p_task_id uuid, p_user_id uuid DEFAULT NULL::uuid) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_heartbeat(uuid, text, integer, integer, uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_heartbeat(p_task_id uuid, p_worker_id text, p_attempt integer DEFAULT NULL::integer, p_lease_seconds integer DEFAULT NULL::integer, p_user_id uuid DEFAULT NULL::uuid) RETURNS timestamp with time zone
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_heartbeat_batch(uuid[], text[], integer[], integer[], uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_heartbeat_batch(p_task_ids uuid[], p_worker_ids text[], p_attempts integer[], p_lease_seconds integer[], p_user_id uuid DEFAULT NULL::uuid) RETURNS TABLE(ordinal integer, task_id uuid, lease_expires_at timestamp with time zone, error_code text, error text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_json_problem(jsonb); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_json_problem(p_value jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO ''
    AS $_$
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
$_$;


--
-- Name: taskclaim_list_tasks(uuid, public.task_status, text, uuid, text, boolean, text, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_list_tasks(p_user_id uuid DEFAULT NULL::uuid, p_status public.task_status DEFAULT NULL::public.task_status, p_task_type text DEFAULT NULL::text, p_project_id uuid DEFAULT NULL::uuid, p_worker_id text DEFAULT NULL::text, p_oldest_first boolean DEFAULT false, p_cursor text DEFAULT NULL::text, p_limit integer DEFAULT 50) RETURNS TABLE(cursor text, task text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $_$
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
$_$;


--
-- Name: taskclaim_notify_ready(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_notify_ready() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
begin
  perform pg_notify('taskclaim_ready', new.user_id::text);
  return null;
end
$$;


--
-- Name: taskclaim_notify_token_change(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_notify_token_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
begin
  perform pg_notify('taskclaim_tokens', old.jti_hash);
  return null;
end
$$;


--
-- Name: taskclaim_projects_owner_changed(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_projects_owner_changed() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
begin
  update public.tasks t set user_id = new.user_id where t.project_id = new.id;
  return null;
end
$$;


--
-- Name: taskclaim_raise_not_held(uuid, uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_raise_not_held(p_task_id uuid, p_user_id uuid) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_reap(integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_reap(p_limit integer DEFAULT 1000) RETURNS TABLE(task_id uuid, status public.task_status, attempts integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_release(uuid, text, integer, uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_release(p_task_id uuid, p_worker_id text, p_attempt integer DEFAULT NULL::integer, p_user_id uuid DEFAULT NULL::uuid) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_retry_task(uuid, uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_retry_task(p_task_id uuid, p_user_id uuid DEFAULT NULL::uuid) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_room(uuid, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_room(p_user uuid, p_cap integer) RETURNS integer
    LANGUAGE sql STABLE
    SET search_path TO ''
    AS $$
  select greatest(0, p_cap - (select count(*) from (
    select 1 from public.tasks t
     where t.user_id = p_user and t.status = 'In Progress' and t.generation_started_at is not null
     limit p_cap
  ) held))::integer
$$;


--
-- Name: taskclaim_task_counts(uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_task_counts(p_user_id uuid DEFAULT NULL::uuid) RETURNS TABLE(task_type text, queued bigint, blocked bigint, in_progress bigint, complete bigint, failed bigint, cancelled bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
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


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: tasks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tasks (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    task_type text NOT NULL,
    params jsonb DEFAULT '{}'::jsonb NOT NULL,
    status public.task_status DEFAULT 'Queued'::public.task_status NOT NULL,
    project_id uuid NOT NULL,
    user_id uuid NOT NULL,
    dependant_on uuid,
    blocked boolean DEFAULT false NOT NULL,
    worker_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    generation_started_at timestamp with time zone,
    generation_processed_at timestamp with time zone,
    attempts integer DEFAULT 0 NOT NULL,
    max_attempts integer DEFAULT 3 NOT NULL,
    lease_expires_at timestamp with time zone,
    claim_id uuid,
    idempotency_key text,
    error text,
    result jsonb,
    output_location text,
    CONSTRAINT tasks_max_attempts_check CHECK ((max_attempts >= 1))
)
WITH (vacuum_index_cleanup='on', autovacuum_vacuum_scale_factor='0.02', autovacuum_analyze_scale_factor='0.05');


--
-- Name: taskclaim_task_json(public.tasks, boolean); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_task_json(p_task public.tasks, p_with_payload boolean) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    SET search_path TO ''
    AS $$
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


--
-- Name: taskclaim_tasks_after_end(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_tasks_after_end() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
begin
  if new.status = 'Complete' then
    update public.tasks t set blocked = false, updated_at = now()
     where t.dependant_on = new.id and t.status = 'Queued' and t.blocked;
  else
    -- A parent that will never complete ends its dependants instead of leaving them blocked for ever.
    update public.tasks t
       set status = 'Cancelled', blocked = false, updated_at = now(),
           error = format('dependency %s is %s', new.id, new.status)
     where t.dependant_on = new.id and t.status = 'Queued';
  end if;
  return null;
end
$$;


--
-- Name: taskclaim_tasks_before_insert(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_tasks_before_insert() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
declare
  v_owner  uuid;
  v_parent public.task_status;
begin
  select p.user_id into v_owner from public.projects p where p.id = new.project_id;
  if v_owner is null then
    raise exception 'project % does not exist', new.project_id using errcode = '23503';
  end if;
  new.user_id := v_owner;
  new.blocked := false;
  if new.dependant_on is not null then
    -- FOR SHARE waits for a concurrent status change of the parent, so its trigger cannot miss this row.
    select t.status into v_parent from public.tasks t where t.id = new.dependant_on for share;
    if v_parent is null then
      raise exception 'dependency % does not exist', new.dependant_on using errcode = '23503';
    elsif v_parent in ('Failed', 'Cancelled') then
      new.status := 'Cancelled';
      new.error := format('dependency %s is %s', new.dependant_on, v_parent);
    elsif v_parent <> 'Complete' then
      new.blocked := true;
    end if;
  end if;
  return new;
end
$$;


--
-- Name: taskclaim_tasks_claimed_without_lease(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_tasks_claimed_without_lease() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
begin
  new.attempts := old.attempts + 1;
  new.updated_at := now();
  new.generation_started_at := now();
  new.claim_id := null;
  new.lease_expires_at := now() + make_interval(secs => 300);
  return new;
end
$$;


--
-- Name: taskclaim_token_user(text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_token_user(p_jti_hash text) RETURNS TABLE(user_id uuid, expires_at timestamp with time zone)
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO ''
    AS $$
  update public.user_api_token k set last_used_at = now()
   where k.jti_hash = p_jti_hash and k.revoked_at is null
     and (k.expires_at is null or k.expires_at > now())
  returning k.user_id, k.expires_at
$$;


--
-- Name: taskclaim_user_lock_key(uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.taskclaim_user_lock_key(p_user uuid) RETURNS bigint
    LANGUAGE sql IMMUTABLE
    SET search_path TO ''
    AS $$
  select hashtextextended('taskclaim user ' || p_user::text, 0)
$$;


--
-- Name: projects; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.projects (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    name text,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: user_api_token; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.user_api_token (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    jti_hash text NOT NULL,
    label text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone,
    last_used_at timestamp with time zone,
    revoked_at timestamp with time zone,
    CONSTRAINT user_api_token_jti_hash_check CHECK ((jti_hash ~ '^[0-9a-f]{64}$'::text))
);


--
-- Name: projects projects_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.projects
    ADD CONSTRAINT projects_pkey PRIMARY KEY (id);


--
-- Name: tasks tasks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tasks
    ADD CONSTRAINT tasks_pkey PRIMARY KEY (id);


--
-- Name: user_api_token user_api_token_jti_hash_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.user_api_token
    ADD CONSTRAINT user_api_token_jti_hash_key UNIQUE (jti_hash);


--
-- Name: user_api_token user_api_token_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.user_api_token
    ADD CONSTRAINT user_api_token_pkey PRIMARY KEY (id);


--
-- Name: projects_user_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX projects_user_id_idx ON public.projects USING btree (user_id);


--
-- Name: tasks_claim_id_key; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX tasks_claim_id_key ON public.tasks USING btree (claim_id) WHERE (claim_id IS NOT NULL);


--
-- Name: tasks_created_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_created_idx ON public.tasks USING btree (created_at, id);


--
-- Name: tasks_dependant_on_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_dependant_on_idx ON public.tasks USING btree (dependant_on) WHERE (dependant_on IS NOT NULL);


--
-- Name: tasks_ended_badly_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_ended_badly_idx ON public.tasks USING btree (created_at, id) WHERE (status = ANY (ARRAY['Failed'::public.task_status, 'Cancelled'::public.task_status]));


--
-- Name: tasks_idempotency_key; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX tasks_idempotency_key ON public.tasks USING btree (project_id, idempotency_key) WHERE (idempotency_key IS NOT NULL);


--
-- Name: tasks_in_progress_user_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_in_progress_user_idx ON public.tasks USING btree (user_id) WHERE ((status = 'In Progress'::public.task_status) AND (generation_started_at IS NOT NULL));


--
-- Name: tasks_lease_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_lease_idx ON public.tasks USING btree (lease_expires_at) WHERE ((status = 'In Progress'::public.task_status) AND (lease_expires_at IS NOT NULL));


--
-- Name: tasks_project_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_project_id_idx ON public.tasks USING btree (project_id);


--
-- Name: tasks_ready_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_ready_idx ON public.tasks USING btree (created_at, id) WHERE ((status = 'Queued'::public.task_status) AND (NOT blocked));


--
-- Name: tasks_ready_type_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_ready_type_idx ON public.tasks USING btree (task_type, created_at, id) WHERE ((status = 'Queued'::public.task_status) AND (NOT blocked));


--
-- Name: tasks_ready_user_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_ready_user_idx ON public.tasks USING btree (user_id, created_at, id) WHERE ((status = 'Queued'::public.task_status) AND (NOT blocked));


--
-- Name: tasks_user_created_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_user_created_idx ON public.tasks USING btree (user_id, created_at, id);


--
-- Name: user_api_token_user_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX user_api_token_user_id_idx ON public.user_api_token USING btree (user_id);


--
-- Name: projects projects_owner_changed; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER projects_owner_changed AFTER UPDATE OF user_id ON public.projects FOR EACH ROW WHEN ((old.user_id IS DISTINCT FROM new.user_id)) EXECUTE FUNCTION public.taskclaim_projects_owner_changed();


--
-- Name: tasks tasks_after_end; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER tasks_after_end AFTER UPDATE OF status ON public.tasks FOR EACH ROW WHEN (((new.status = ANY (ARRAY['Complete'::public.task_status, 'Failed'::public.task_status, 'Cancelled'::public.task_status])) AND (old.status IS DISTINCT FROM new.status))) EXECUTE FUNCTION public.taskclaim_tasks_after_end();


--
-- Name: tasks tasks_before_insert; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER tasks_before_insert BEFORE INSERT ON public.tasks FOR EACH ROW EXECUTE FUNCTION public.taskclaim_tasks_before_insert();


--
-- Name: tasks tasks_claimed_without_lease; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER tasks_claimed_without_lease BEFORE UPDATE OF status ON public.tasks FOR EACH ROW WHEN (((old.status = 'Queued'::public.task_status) AND (new.status = 'In Progress'::public.task_status) AND (new.lease_expires_at IS NULL))) EXECUTE FUNCTION public.taskclaim_tasks_claimed_without_lease();


--
-- Name: tasks tasks_ready_after_insert; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER tasks_ready_after_insert AFTER INSERT ON public.tasks FOR EACH ROW WHEN (((new.status = 'Queued'::public.task_status) AND (NOT new.blocked))) EXECUTE FUNCTION public.taskclaim_notify_ready();


--
-- Name: tasks tasks_ready_after_update; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER tasks_ready_after_update AFTER UPDATE OF status, blocked, user_id ON public.tasks FOR EACH ROW WHEN (((new.status = 'Queued'::public.task_status) AND (NOT new.blocked) AND ((old.status <> 'Queued'::public.task_status) OR old.blocked OR (old.user_id IS DISTINCT FROM new.user_id)))) EXECUTE FUNCTION public.taskclaim_notify_ready();


--
-- Name: user_api_token user_api_token_changed; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER user_api_token_changed AFTER DELETE OR UPDATE OF user_id, jti_hash, expires_at, revoked_at ON public.user_api_token FOR EACH ROW EXECUTE FUNCTION public.taskclaim_notify_token_change();


--
-- Name: tasks tasks_dependant_on_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tasks
    ADD CONSTRAINT tasks_dependant_on_fkey FOREIGN KEY (dependant_on) REFERENCES public.tasks(id) ON DELETE SET NULL;


--
-- Name: tasks tasks_project_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tasks
    ADD CONSTRAINT tasks_project_id_fkey FOREIGN KEY (project_id) REFERENCES public.projects(id) ON DELETE CASCADE;


--
-- Name: projects; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.projects ENABLE ROW LEVEL SECURITY;

--
-- Name: projects select_own_projects; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY select_own_projects ON public.projects FOR SELECT TO authenticated USING ((user_id = ( SELECT auth.uid() AS uid)));


--
-- Name: tasks select_own_queued; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY select_own_queued ON public.tasks FOR SELECT TO authenticated USING (((user_id = ( SELECT auth.uid() AS uid)) AND (status = 'Queued'::public.task_status)));


--
-- Name: tasks; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.tasks ENABLE ROW LEVEL SECURITY;

--
-- Name: tasks update_own_to_in_progress; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY update_own_to_in_progress ON public.tasks FOR UPDATE TO authenticated USING (((user_id = ( SELECT auth.uid() AS uid)) AND (status = 'Queued'::public.task_status) AND (NOT blocked))) WITH CHECK (((user_id = ( SELECT auth.uid() AS uid)) AND (status = 'In Progress'::public.task_status) AND (worker_id IS NOT NULL)));


--
-- Name: user_api_token; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.user_api_token ENABLE ROW LEVEL SECURITY;

--
-- Name: SCHEMA auth; Type: ACL; Schema: -; Owner: -
--

GRANT USAGE ON SCHEMA auth TO anon;
GRANT USAGE ON SCHEMA auth TO authenticated;
GRANT USAGE ON SCHEMA auth TO service_role;


--
-- Name: SCHEMA public; Type: ACL; Schema: -; Owner: -
--

GRANT USAGE ON SCHEMA public TO anon;
GRANT USAGE ON SCHEMA public TO authenticated;
GRANT USAGE ON SCHEMA public TO service_role;


--
-- Name: FUNCTION func_claim_task(p_table_name text, p_worker_id text); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.func_claim_task(p_table_name text, p_worker_id text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.func_claim_task(p_table_name text, p_worker_id text) TO service_role;


--
-- Name: FUNCTION func_claim_user_task(p_table_name text, p_worker_id text, p_user_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.func_claim_user_task(p_table_name text, p_worker_id text, p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.func_claim_user_task(p_table_name text, p_worker_id text, p_user_id uuid) TO service_role;


--
-- Name: FUNCTION taskclaim_cancel_task(p_task_id uuid, p_reason text, p_user_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_cancel_task(p_task_id uuid, p_reason text, p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_cancel_task(p_task_id uuid, p_reason text, p_user_id uuid) TO service_role;


--
-- Name: FUNCTION taskclaim_check_claim(p_worker_ids text[], p_lease_seconds integer, p_task_types text[]); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_check_claim(p_worker_ids text[], p_lease_seconds integer, p_task_types text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_check_claim(p_worker_ids text[], p_lease_seconds integer, p_task_types text[]) TO service_role;


--
-- Name: FUNCTION taskclaim_check_table(p_table_name text); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_check_table(p_table_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_check_table(p_table_name text) TO service_role;


--
-- Name: FUNCTION taskclaim_claim(p_worker_id text, p_user_id uuid, p_lease_seconds integer, p_claim_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_claim(p_worker_id text, p_user_id uuid, p_lease_seconds integer, p_claim_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_claim(p_worker_id text, p_user_id uuid, p_lease_seconds integer, p_claim_id uuid) TO service_role;


--
-- Name: FUNCTION taskclaim_claim_batch(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_claim_batch(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_claim_batch(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer) TO service_role;


--
-- Name: FUNCTION taskclaim_claim_batch(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer, p_task_types text[]); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_claim_batch(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer, p_task_types text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_claim_batch(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer, p_task_types text[]) TO service_role;


--
-- Name: FUNCTION taskclaim_claim_core(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer, p_task_types text[], p_claim_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_claim_core(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer, p_task_types text[], p_claim_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_claim_core(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer, p_task_types text[], p_claim_id uuid) TO service_role;


--
-- Name: FUNCTION taskclaim_claim_next(p_worker_id text, p_user_id uuid, p_lease_seconds integer, p_claim_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_claim_next(p_worker_id text, p_user_id uuid, p_lease_seconds integer, p_claim_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_claim_next(p_worker_id text, p_user_id uuid, p_lease_seconds integer, p_claim_id uuid) TO service_role;


--
-- Name: FUNCTION taskclaim_claim_round_robin(p_worker_ids text[], p_after_user uuid, p_lease_seconds integer, p_max_in_progress integer); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_claim_round_robin(p_worker_ids text[], p_after_user uuid, p_lease_seconds integer, p_max_in_progress integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_claim_round_robin(p_worker_ids text[], p_after_user uuid, p_lease_seconds integer, p_max_in_progress integer) TO service_role;


--
-- Name: FUNCTION taskclaim_claim_user_capped(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer, p_task_types text[], p_claim_id uuid, p_max_in_progress integer); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_claim_user_capped(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer, p_task_types text[], p_claim_id uuid, p_max_in_progress integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_claim_user_capped(p_worker_ids text[], p_user_id uuid, p_lease_seconds integer, p_task_types text[], p_claim_id uuid, p_max_in_progress integer) TO service_role;


--
-- Name: FUNCTION taskclaim_complete(p_task_id uuid, p_worker_id text, p_attempt integer, p_result jsonb, p_output_location text, p_user_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_complete(p_task_id uuid, p_worker_id text, p_attempt integer, p_result jsonb, p_output_location text, p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_complete(p_task_id uuid, p_worker_id text, p_attempt integer, p_result jsonb, p_output_location text, p_user_id uuid) TO service_role;


--
-- Name: FUNCTION taskclaim_complete_batch(p_task_ids uuid[], p_worker_ids text[], p_attempts integer[], p_results jsonb[], p_output_locations text[], p_user_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_complete_batch(p_task_ids uuid[], p_worker_ids text[], p_attempts integer[], p_results jsonb[], p_output_locations text[], p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_complete_batch(p_task_ids uuid[], p_worker_ids text[], p_attempts integer[], p_results jsonb[], p_output_locations text[], p_user_id uuid) TO service_role;


--
-- Name: FUNCTION taskclaim_create_task(p_project_id uuid, p_task_type text, p_params jsonb, p_dependant_on uuid, p_idempotency_key text, p_user_id uuid, p_max_attempts integer); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_create_task(p_project_id uuid, p_task_type text, p_params jsonb, p_dependant_on uuid, p_idempotency_key text, p_user_id uuid, p_max_attempts integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_create_task(p_project_id uuid, p_task_type text, p_params jsonb, p_dependant_on uuid, p_idempotency_key text, p_user_id uuid, p_max_attempts integer) TO service_role;


--
-- Name: FUNCTION taskclaim_delete_user(p_user_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_delete_user(p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_delete_user(p_user_id uuid) TO service_role;


--
-- Name: FUNCTION taskclaim_fail(p_task_id uuid, p_worker_id text, p_attempt integer, p_error text, p_retry boolean, p_user_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_fail(p_task_id uuid, p_worker_id text, p_attempt integer, p_error text, p_retry boolean, p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_fail(p_task_id uuid, p_worker_id text, p_attempt integer, p_error text, p_retry boolean, p_user_id uuid) TO service_role;


--
-- Name: FUNCTION taskclaim_get_task(p_task_id uuid, p_user_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_get_task(p_task_id uuid, p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_get_task(p_task_id uuid, p_user_id uuid) TO service_role;


--
-- Name: FUNCTION taskclaim_heartbeat(p_task_id uuid, p_worker_id text, p_attempt integer, p_lease_seconds integer, p_user_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_heartbeat(p_task_id uuid, p_worker_id text, p_attempt integer, p_lease_seconds integer, p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_heartbeat(p_task_id uuid, p_worker_id text, p_attempt integer, p_lease_seconds integer, p_user_id uuid) TO service_role;


--
-- Name: FUNCTION taskclaim_heartbeat_batch(p_task_ids uuid[], p_worker_ids text[], p_attempts integer[], p_lease_seconds integer[], p_user_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_heartbeat_batch(p_task_ids uuid[], p_worker_ids text[], p_attempts integer[], p_lease_seconds integer[], p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_heartbeat_batch(p_task_ids uuid[], p_worker_ids text[], p_attempts integer[], p_lease_seconds integer[], p_user_id uuid) TO service_role;


--
-- Name: FUNCTION taskclaim_json_problem(p_value jsonb); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_json_problem(p_value jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_json_problem(p_value jsonb) TO service_role;


--
-- Name: FUNCTION taskclaim_list_tasks(p_user_id uuid, p_status public.task_status, p_task_type text, p_project_id uuid, p_worker_id text, p_oldest_first boolean, p_cursor text, p_limit integer); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_list_tasks(p_user_id uuid, p_status public.task_status, p_task_type text, p_project_id uuid, p_worker_id text, p_oldest_first boolean, p_cursor text, p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_list_tasks(p_user_id uuid, p_status public.task_status, p_task_type text, p_project_id uuid, p_worker_id text, p_oldest_first boolean, p_cursor text, p_limit integer) TO service_role;


--
-- Name: FUNCTION taskclaim_notify_ready(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_notify_ready() FROM PUBLIC;


--
-- Name: FUNCTION taskclaim_notify_token_change(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_notify_token_change() FROM PUBLIC;


--
-- Name: FUNCTION taskclaim_projects_owner_changed(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_projects_owner_changed() FROM PUBLIC;


--
-- Name: FUNCTION taskclaim_raise_not_held(p_task_id uuid, p_user_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_raise_not_held(p_task_id uuid, p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_raise_not_held(p_task_id uuid, p_user_id uuid) TO service_role;


--
-- Name: FUNCTION taskclaim_reap(p_limit integer); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_reap(p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_reap(p_limit integer) TO service_role;


--
-- Name: FUNCTION taskclaim_release(p_task_id uuid, p_worker_id text, p_attempt integer, p_user_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_release(p_task_id uuid, p_worker_id text, p_attempt integer, p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_release(p_task_id uuid, p_worker_id text, p_attempt integer, p_user_id uuid) TO service_role;


--
-- Name: FUNCTION taskclaim_retry_task(p_task_id uuid, p_user_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_retry_task(p_task_id uuid, p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_retry_task(p_task_id uuid, p_user_id uuid) TO service_role;


--
-- Name: FUNCTION taskclaim_room(p_user uuid, p_cap integer); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_room(p_user uuid, p_cap integer) FROM PUBLIC;


--
-- Name: FUNCTION taskclaim_task_counts(p_user_id uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_task_counts(p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_task_counts(p_user_id uuid) TO service_role;


--
-- Name: TABLE tasks; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT ON TABLE public.tasks TO authenticated;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.tasks TO service_role;


--
-- Name: COLUMN tasks.status; Type: ACL; Schema: public; Owner: -
--

GRANT UPDATE(status) ON TABLE public.tasks TO authenticated;


--
-- Name: COLUMN tasks.worker_id; Type: ACL; Schema: public; Owner: -
--

GRANT UPDATE(worker_id) ON TABLE public.tasks TO authenticated;


--
-- Name: FUNCTION taskclaim_task_json(p_task public.tasks, p_with_payload boolean); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_task_json(p_task public.tasks, p_with_payload boolean) FROM PUBLIC;


--
-- Name: FUNCTION taskclaim_tasks_after_end(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_tasks_after_end() FROM PUBLIC;


--
-- Name: FUNCTION taskclaim_tasks_before_insert(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_tasks_before_insert() FROM PUBLIC;


--
-- Name: FUNCTION taskclaim_tasks_claimed_without_lease(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_tasks_claimed_without_lease() FROM PUBLIC;


--
-- Name: FUNCTION taskclaim_token_user(p_jti_hash text); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_token_user(p_jti_hash text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.taskclaim_token_user(p_jti_hash text) TO service_role;


--
-- Name: FUNCTION taskclaim_user_lock_key(p_user uuid); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.taskclaim_user_lock_key(p_user uuid) FROM PUBLIC;


--
-- Name: TABLE projects; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT ON TABLE public.projects TO authenticated;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.projects TO service_role;


--
-- Name: TABLE user_api_token; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.user_api_token TO service_role;


--
-- PostgreSQL database dump complete
--
