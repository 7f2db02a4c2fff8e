"""taskclaim_complete_batch: many completions in one statement, each with its own answer or error."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from taskclaim.queries import query
from tests.helpers import Conn, make_project, make_task, task


def claim(db: Conn, worker_id: str) -> dict[str, object]:
    row = db.execute(
        query("claim"), {"worker_id": worker_id, "user_id": None, "lease_seconds": 60, "claim_id": None}
    ).fetchone()
    assert row is not None
    return dict(row)


def complete_batch(
    db: Conn, items: list[dict[str, object]], user_id: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    params = {
        "task_ids": [i["task_id"] for i in items],
        "worker_ids": [i["worker_id"] for i in items],
        "attempts": [i.get("attempt") for i in items],
        "results": [i.get("result") for i in items],
        "output_locations": [i.get("output_location") for i in items],
        "user_id": user_id,
    }
    return [dict(r) for r in db.execute(query("complete_batch"), params).fetchall()]


def test_each_item_gets_its_own_answer(db: Conn) -> None:
    project = make_project(db)
    for _ in range(4):
        make_task(db, project)
    held, done_before, taken_back = claim(db, "a"), claim(db, "b"), claim(db, "c")
    db.execute("update tasks set status = 'Complete' where id = %s", (done_before["task_id"],))
    db.execute("update tasks set worker_id = 'someone-else' where id = %s", (taken_back["task_id"],))
    missing = uuid.uuid4()
    rows = complete_batch(
        db,
        [
            {**held, "result": Jsonb({"ok": 1}), "output_location": "s3://x"},
            done_before,  # the same holder completing again: the same answer
            taken_back,  # a stale holder
            {"task_id": missing, "worker_id": "a", "attempt": 1},
        ],
    )
    by_n = {r["ordinal"]: r for r in rows}
    assert sorted(by_n) == [1, 2, 3, 4]
    assert (by_n[1]["status"], by_n[1]["error_code"]) == ("Complete", None)
    assert (by_n[2]["status"], by_n[2]["error_code"]) == ("Complete", None)
    assert by_n[3]["error_code"] == "TC409" and "not held" in by_n[3]["error"]
    assert by_n[4]["error_code"] == "TC404" and str(missing) in by_n[4]["error"]
    row = task(db, held["task_id"])  # type: ignore[arg-type]
    assert (row["status"], row["result"], row["output_location"]) == ("Complete", {"ok": 1}, "s3://x")
    assert row["generation_processed_at"] is not None
    assert task(db, taken_back["task_id"])["status"] == "In Progress"  # type: ignore[arg-type]


def test_a_users_batch_does_not_reach_another_users_task(db: Conn) -> None:
    make_task(db, make_project(db, uuid.uuid4()))
    held = claim(db, "w")
    rows = complete_batch(db, [held], user_id=uuid.uuid4())
    assert rows[0]["error_code"] == "TC404"
    assert task(db, held["task_id"])["status"] == "In Progress"  # type: ignore[arg-type]


def test_a_stale_attempt_is_refused(db: Conn) -> None:
    make_task(db, make_project(db))
    held = claim(db, "w")
    rows = complete_batch(db, [{**held, "attempt": 7}])
    assert rows[0]["error_code"] == "TC409"


@pytest.mark.parametrize(
    "task_ids",
    [
        pytest.param("same", id="a task twice"),
        pytest.param("none", id="no items"),
    ],
)
def test_bad_batches_raise_and_change_nothing(db: Conn, task_ids: str) -> None:
    make_task(db, make_project(db))
    held = claim(db, "w")
    items = [held, held] if task_ids == "same" else []
    with pytest.raises(psycopg.Error) as raised:
        complete_batch(db, items)
    assert raised.value.sqlstate == "TC400"
    assert task(db, held["task_id"])["status"] == "In Progress"  # type: ignore[arg-type]
