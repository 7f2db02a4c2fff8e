-- Every query taskclaim runs, one named block each ("-- name --"), loaded by taskclaim.queries.
-- The logic lives in the SQL functions of supabase/migrations; these are the calls.

-- claim --
select task_id, params, task_type, project_id, worker_id, attempt, lease_expires_at
  from public.taskclaim_claim(%(worker_id)s, %(user_id)s, %(lease_seconds)s, %(claim_id)s)

-- func_claim_task --
select * from public.func_claim_task('tasks', %(worker_id)s)

-- heartbeat --
select public.taskclaim_heartbeat(%(task_id)s, %(worker_id)s, %(attempt)s, %(lease_seconds)s, %(user_id)s)
  as lease_expires_at

-- complete --
select task_id, status, generation_processed_at
  from public.taskclaim_complete(%(task_id)s, %(worker_id)s, %(attempt)s, %(result)s,
                                 %(output_location)s, %(user_id)s)

-- fail --
select task_id, status, attempts, max_attempts
  from public.taskclaim_fail(%(task_id)s, %(worker_id)s, %(attempt)s, %(error)s, %(retry)s, %(user_id)s)

-- release --
select public.taskclaim_release(%(task_id)s, %(worker_id)s, %(attempt)s, %(user_id)s)

-- reap --
select task_id, status, attempts from public.taskclaim_reap(%(limit)s)

-- reap_if_leader --
-- One replica at a time: whoever holds the transaction-level advisory lock reaps, the others skip.
select r.task_id, r.status, r.attempts
  from (select pg_try_advisory_xact_lock(hashtext('taskclaim.reaper')) as leader) l,
       lateral (select * from public.taskclaim_reap(%(limit)s) where l.leader) r

-- create_task --
select task_id, status, blocked, created
  from public.taskclaim_create_task(%(project_id)s, %(task_type)s, %(params)s, %(dependant_on)s,
                                    %(idempotency_key)s, %(user_id)s, %(max_attempts)s)

-- task_counts --
select task_type, queued, blocked, in_progress, complete, failed, cancelled
  from public.taskclaim_task_counts(%(user_id)s)

-- token_user --
select user_id, expires_at from public.taskclaim_token_user(%(jti_hash)s)

-- create_token --
insert into public.user_api_token (user_id, jti_hash, label, expires_at)
values (%(user_id)s, %(jti_hash)s, %(label)s, %(expires_at)s)
returning id, user_id, label, created_at, expires_at

-- list_tokens --
select id, label, created_at, expires_at, last_used_at, revoked_at
  from public.user_api_token
 where user_id = %(user_id)s
 order by created_at

-- revoke_token --
update public.user_api_token set revoked_at = coalesce(revoked_at, now())
 where id = %(id)s
returning id, revoked_at

-- create_project --
insert into public.projects (id, user_id, name)
values (coalesce(%(id)s, gen_random_uuid()), %(user_id)s, %(name)s)
on conflict (id) do nothing
returning id, user_id, name

-- list_projects --
select p.id, p.user_id, p.name, p.created_at, (select count(*) from public.tasks t where t.project_id = p.id) as tasks
  from public.projects p
 where %(user_id)s::uuid is null or p.user_id = %(user_id)s::uuid
 order by p.created_at, p.id

-- delete_user --
select projects, tasks, tokens from public.taskclaim_delete_user(%(user_id)s)

-- ping --
select 1

-- func_claim_user_task --
select * from public.func_claim_user_task('tasks', %(worker_id)s, %(user_id)s)

-- claim_batch --
select ordinal, task_id, params, task_type, project_id, worker_id, attempt, lease_expires_at
  from public.taskclaim_claim_batch(%(worker_ids)s, %(user_id)s, %(lease_seconds)s)

-- claim_batch_by_type --
select ordinal, task_id, params, task_type, project_id, worker_id, attempt, lease_expires_at
  from public.taskclaim_claim_batch(%(worker_ids)s, %(user_id)s, %(lease_seconds)s, %(task_types)s::text[])

-- claim_round_robin --
select ordinal, task_id, params, task_type, project_id, worker_id, attempt, lease_expires_at, user_id
  from public.taskclaim_claim_round_robin(%(worker_ids)s, %(after_user)s, %(lease_seconds)s,
                                          %(max_in_progress)s::integer)

-- claim_user_capped --
select ordinal, task_id, params, task_type, project_id, worker_id, attempt, lease_expires_at
  from public.taskclaim_claim_user_capped(%(worker_ids)s, %(user_id)s, %(lease_seconds)s, %(task_types)s::text[],
                                          %(claim_id)s::uuid, %(max_in_progress)s)

-- complete_batch --
-- The casts let a column of NULLs (no attempt, no result) through as the right array type.
select ordinal, task_id, status, generation_processed_at, error_code, error
  from public.taskclaim_complete_batch(%(task_ids)s::uuid[], %(worker_ids)s::text[], %(attempts)s::integer[],
                                       %(results)s::jsonb[], %(output_locations)s::text[], %(user_id)s)

-- heartbeat_batch --
select ordinal, task_id, lease_expires_at, error_code, error
  from public.taskclaim_heartbeat_batch(%(task_ids)s::uuid[], %(worker_ids)s::text[], %(attempts)s::integer[],
                                        %(lease_seconds)s::integer[], %(user_id)s)

-- listen_ready --
listen taskclaim_ready

-- listen_probe --
listen taskclaim_probe

-- listen_tokens --
listen taskclaim_tokens

-- notify_probe --
-- Sent through the pool, the way the triggers' notifications travel: heard back, it proves they arrive.
select pg_notify('taskclaim_probe', %(token)s)

-- queue_gauges --
-- Every count reads the claim's or the lease's partial index: cheap however many tasks have finished.
-- (Every In Progress task has a lease; the lease index holds exactly those.)
select (select count(*) from public.tasks where status = 'Queued' and not blocked) as ready,
       (select count(*) from public.tasks
         where status = 'In Progress' and lease_expires_at is not null) as in_progress,
       (select count(*) from public.tasks
         where status = 'In Progress' and lease_expires_at < now()) as lease_expired,
       (select extract(epoch from now() - min(created_at)) from public.tasks
         where status = 'Queued' and not blocked) as oldest_ready_age

-- ready_by_type --
-- An index-only count over tasks_ready_type_idx: as cheap as the ready tasks are few.
select task_type, count(*) as ready
  from public.tasks
 where status = 'Queued' and not blocked
 group by task_type
 order by ready desc, task_type
 limit 50

-- get_task --
select public.taskclaim_get_task(%(task_id)s, %(user_id)s) as task

-- list_tasks --
select cursor, task
  from public.taskclaim_list_tasks(%(user_id)s, %(status)s::public.task_status, %(task_type)s, %(project_id)s,
                                   %(worker_id)s, %(oldest_first)s, %(cursor)s, %(limit)s)

-- cancel_task --
select public.taskclaim_cancel_task(%(task_id)s, %(reason)s, %(user_id)s) as task

-- retry_task --
select public.taskclaim_retry_task(%(task_id)s, %(user_id)s) as task
