-- The lease index no longer serves a look-up by id. It held every In Progress task, so a statement that
-- finds one task by id and status = 'In Progress' (complete, fail, heartbeat, release and their batch)
-- could read it instead of the primary key: the planner takes it whenever its statistics say few tasks
-- are In Progress, which is exactly what they say right after a bulk enqueue was analysed and a fleet
-- then claimed the lot. Every completion then scanned all the held tasks' entries (147 ms for a batch of
-- 50 with 20,000 held; BENCHMARKS.md, "The drain"). The extra condition is implied by what the reaper
-- and the gauges ask (lease_expires_at < now(), is not null) and by nothing that asks for one id.
-- Every In Progress task has a lease (tasks_claimed_without_lease sets one), so no row leaves the index.
-- On a large table this rebuild holds a write lock while it runs; see README, "The database".
drop index public.tasks_lease_idx;
create index tasks_lease_idx on public.tasks (lease_expires_at)
  where status = 'In Progress' and lease_expires_at is not null;
