"""Claims filtered by task_type (taskclaim_claim_batch's four-argument form)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from taskclaim.queries import query
from tests.helpers import Conn, explain_buffers, make_project, make_task, status_counts

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def claim(db: Conn, types: list[str] | None, n: int = 1, user: uuid.UUID | None = None) -> list[str]:
    params = {"worker_ids": ["w"] * n, "user_id": user, "lease_seconds": 60, "task_types": types}
    rows = db.execute(query("claim_batch_by_type"), params).fetchall()
    return [r["task_type"] for r in sorted(rows, key=lambda r: r["ordinal"])]


def test_only_the_given_types_oldest_first(db: Conn) -> None:
    project = make_project(db)
    for minute, kind in enumerate(["train", "render", "upscale", "render", "train"]):
        make_task(db, project, task_type=kind, created_at=T0 + timedelta(minutes=minute))
    assert claim(db, ["render"], 5) == ["render", "render"]
    assert claim(db, ["upscale", "train"], 5) == ["train", "upscale", "train"]
    assert status_counts(db) == {"In Progress": 5}


def test_no_filter_is_every_type(db: Conn) -> None:
    project = make_project(db)
    for kind in ("a", "b"):
        make_task(db, project, task_type=kind)
    assert sorted(claim(db, None, 5)) == ["a", "b"]


def test_a_users_filtered_claim_takes_only_their_tasks(db: Conn) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    make_task(db, make_project(db, bob), task_type="render", created_at=T0)
    make_task(db, make_project(db, alice), task_type="render", created_at=T0 + timedelta(minutes=1))
    make_task(db, make_project(db, alice), task_type="train", created_at=T0 - timedelta(minutes=1))
    assert claim(db, ["render"], 5, alice) == ["render"]
    assert claim(db, ["render"], 5, alice) == []
    assert status_counts(db) == {"In Progress": 1, "Queued": 2}


@pytest.mark.parametrize("types", [[], [None], ["render", None]])
def test_bad_type_lists_raise(db: Conn, types: list[str | None]) -> None:
    make_task(db, make_project(db), task_type="render")
    with pytest.raises(psycopg.Error) as raised:
        claim(db, types)  # type: ignore[arg-type]
    assert raised.value.sqlstate == "TC400"
    assert status_counts(db) == {"Queued": 1}


@pytest.mark.slow
def test_one_type_is_one_index_scan_behind_many_ready_tasks_of_others(db: Conn) -> None:
    project = make_project(db)
    db.execute(
        "insert into public.tasks (project_id, task_type, created_at)"
        " select %s, 'other', %s + n * interval '1 ms' from generate_series(1, 20000) n",
        (project, T0),
    )
    make_task(db, project, task_type="render", created_at=T0 + timedelta(days=1))
    db.execute("analyze public.tasks")
    assert claim(db, ["nothing-of-this-type"]) == []  # the backend's first call loads its caches
    statement = "select * from public.taskclaim_claim_batch(array['w'], null, 60, array['render'])"
    buffers = explain_buffers(db, statement, ())
    assert status_counts(db) == {"Queued": 20000, "In Progress": 1}  # the EXPLAIN really claimed
    assert 0 < buffers < 200, buffers
