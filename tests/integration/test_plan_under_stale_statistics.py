"""Statements that find one task by id must read it by its primary key, whatever the planner's statistics
say. Found by the drain benchmark: after a bulk enqueue the table is analysed with every task Queued, so
right after a fleet has claimed 20,000 of them the planner believes about one is In Progress, and a
completion (``id = $1 and status = 'In Progress'``) scanned the lease index's 20,000 entries instead of
the primary key: 147 ms for a batch of 50, until autovacuum's next analyse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from taskclaim.queries import query
from tests.helpers import Conn, make_project


@pytest.fixture
def stale(db: Conn) -> Iterator[Conn]:
    """20,000 tasks In Progress, in a table last analysed when all of them were Queued."""
    project = make_project(db)
    db.execute("alter table public.tasks set (autovacuum_enabled = false)")
    try:
        db.execute(
            "insert into public.tasks (project_id, task_type)"
            " select %s, 'render' from generate_series(1, 20000)",
            (project,),
        )
        db.execute("analyze public.tasks")
        db.execute(
            "update public.tasks set status = 'In Progress', worker_id = 'w', attempts = 1,"
            " lease_expires_at = now() + interval '5 minutes' where status = 'Queued'"
        )
        yield db
    finally:
        db.execute("alter table public.tasks reset (autovacuum_enabled)")


def plan(conn: Conn, statement: str, params: tuple[Any, ...]) -> dict[str, Any]:
    with conn.transaction(force_rollback=True):
        row = conn.execute(f"explain (format json) {statement}", params).fetchone()
    assert row is not None
    found = row["QUERY PLAN"]
    return dict((json.loads(found) if isinstance(found, str) else found)[0]["Plan"])


def indexes(node: dict[str, Any]) -> set[str]:
    found = {node["Index Name"]} if "Index Name" in node else set()
    for child in node.get("Plans", []):
        found |= indexes(child)
    return found


@pytest.mark.parametrize(
    "statement",
    [
        # the shape of taskclaim_complete, _fail, _heartbeat and _release: one task, by id, held
        "update public.tasks set status = 'Complete' where id = %s and status = 'In Progress'"
        " and worker_id = 'w'",
        "select 1 from public.tasks where id = %s and status = 'In Progress' for update",
    ],
)
def test_one_task_by_id_is_read_by_its_primary_key(stale: Conn, statement: str) -> None:
    row = stale.execute("select id from public.tasks limit 1 offset 10000").fetchone()
    assert row is not None
    used = indexes(plan(stale, statement, (row["id"],)))
    assert used == {"tasks_pkey"}, used


def test_the_reaper_and_the_gauges_still_read_the_lease_index(stale: Conn) -> None:
    expired = "select id from public.tasks where status = 'In Progress' and lease_expires_at < now()"
    reap = plan(stale, expired, ())
    assert indexes(reap) == {"tasks_lease_idx"}
    assert "tasks_lease_idx" in indexes(plan(stale, query("queue_gauges"), ()))  # /metrics' counts
