-- A queue table churns at its head: every claim leaves a dead entry at the front of the ready index.
-- VACUUM (since PostgreSQL 14) skips cleaning indexes when fewer than 2 % of the table's pages hold dead
-- rows, which is always true once millions of finished tasks sit behind a small ready set: the dead
-- entries then stay, and every claim steps over them (measured: 519 buffers per claim with 10 million
-- finished tasks, against 25). So index cleanup is always on for this table, and autovacuum comes after
-- 2 % of it is dead rather than 20 %.
alter table public.tasks set (
  vacuum_index_cleanup = on,
  autovacuum_vacuum_scale_factor = 0.02,
  autovacuum_analyze_scale_factor = 0.05
);
