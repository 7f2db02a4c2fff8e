"""The SQL functions of the direct path check what the HTTP service checks (taskclaim.limits): a task that
could never be returned is never stored, a bad item of a batch fails alone, and the limits agree."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from taskclaim import limits
from tests.helpers import Conn, make_project, make_task, nested, task

SAFE = limits.MAX_SAFE_INTEGER


def create(conn: Conn, project: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "project_id": project,
        "task_type": "render",
        "params": Jsonb({}),
        "idempotency_key": None,
        "max_attempts": 3,
    } | overrides
    row = conn.execute(
        "select * from public.taskclaim_create_task(%(project_id)s, %(task_type)s, %(params)s, null,"
        " %(idempotency_key)s, null, %(max_attempts)s)",
        args,
    ).fetchone()
    assert row is not None
    return dict(row)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n": -10_000_000_000_000_000_000}, "integer outside"),
        ({"n": SAFE + 1}, "integer outside"),
        ({"n": 1e20}, "integer outside"),
        ({"deep": nested(limits.MAX_JSON_DEPTH)}, "nests deeper"),
    ],
)
def test_create_task_refuses_params_that_could_not_be_returned(
    db: Conn, params: dict[str, Any], message: str
) -> None:
    project = make_project(db)
    with pytest.raises(psycopg.Error, match=message) as caught:
        create(db, project, params=Jsonb(params))
    assert caught.value.sqlstate == "TC400"
    assert db.execute("select count(*) as n from public.tasks").fetchone() == {"n": 0}


def test_create_task_takes_params_at_the_limits(db: Conn) -> None:
    project = make_project(db)
    params = {
        "max": SAFE,
        "min": -SAFE,
        "real": 0.5,
        "tiny": 1e-300,
        "deep": nested(limits.MAX_JSON_DEPTH - 2),
    }
    created = create(db, project, params=Jsonb(params))
    assert task(db, created["task_id"])["params"] == params


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"task_type": "x" * (limits.MAX_NAME_LENGTH + 1)}, "task_type"),
        ({"task_type": ""}, "task_type"),
        ({"idempotency_key": "k" * (limits.MAX_NAME_LENGTH + 1)}, "idempotency_key"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"max_attempts": limits.MAX_MAX_ATTEMPTS + 1}, "max_attempts"),
        ({"params": Jsonb([1, 2])}, "params"),
    ],
)
def test_create_task_refuses_what_the_service_refuses(
    db: Conn, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(psycopg.Error, match=field) as caught:
        create(db, make_project(db), **overrides)
    assert caught.value.sqlstate == "TC400"


@pytest.mark.parametrize(
    ("statement", "args"),
    [
        ("select * from public.func_claim_task('tasks', %s)", ("w" * (limits.MAX_NAME_LENGTH + 1),)),
        ("select * from public.taskclaim_claim(%s, null, %s)", ("w", limits.MAX_LEASE_SECONDS + 1)),
        ("select * from public.taskclaim_claim_batch(%s, null, 60)", (["ok", ""],)),
        (
            "select * from public.taskclaim_claim_batch(array['w'], null, 60, %s)",
            (["t"] * (limits.MAX_TASK_TYPES + 1),),
        ),
    ],
)
def test_claims_refuse_what_the_service_refuses(db: Conn, statement: str, args: tuple[Any, ...]) -> None:
    make_task(db, make_project(db))
    with pytest.raises(psycopg.Error) as caught:
        db.execute(statement, args)
    assert caught.value.sqlstate == "TC400"
    assert task(db, db.execute("select id from public.tasks").fetchone()["id"])["status"] == "Queued"  # type: ignore[index]


def claim(conn: Conn, worker: str = "w", lease: int = 60) -> dict[str, Any]:
    row = conn.execute("select * from public.taskclaim_claim(%s, null, %s)", (worker, lease)).fetchone()
    assert row is not None
    return dict(row)


def test_a_bad_result_in_a_completion_batch_fails_only_its_own_item(db: Conn) -> None:
    project = make_project(db)
    for _ in range(3):
        make_task(db, project)
    held = [claim(db, f"w{n}") for n in range(3)]
    rows = db.execute(
        "select * from public.taskclaim_complete_batch(%s::uuid[], %s::text[], %s::integer[], %s::jsonb[],"
        " %s::text[]) order by ordinal",
        (
            [h["task_id"] for h in held],
            [h["worker_id"] for h in held],
            [h["attempt"] for h in held],
            [Jsonb({"ok": 1}), Jsonb({"n": 10**20}), Jsonb({"ok": 3})],
            [None, None, "x" * (limits.MAX_OUTPUT_LOCATION_LENGTH + 1)],
        ),
    ).fetchall()
    assert [(r["error_code"], r["status"]) for r in rows] == [
        (None, "Complete"),
        ("TC400", None),
        ("TC400", None),
    ]
    assert "integer outside" in rows[1]["error"] and "output_location" in rows[2]["error"]
    assert [task(db, h["task_id"])["status"] for h in held] == ["Complete", "In Progress", "In Progress"]


def test_a_heartbeat_without_a_lease_extends_by_the_lease_the_task_was_given(db: Conn) -> None:
    make_task(db, make_project(db))
    held = claim(db, lease=3600)
    row = db.execute(
        "select public.taskclaim_heartbeat(%s, %s, %s) - now() as left",
        (held["task_id"], "w", held["attempt"]),
    ).fetchone()
    assert row is not None and 3590 <= row["left"].total_seconds() <= 3600
    row = db.execute(
        "select public.taskclaim_heartbeat(%s, %s, %s, 120) - now() as left",
        (held["task_id"], "w", held["attempt"]),
    ).fetchone()
    assert row is not None and 110 <= row["left"].total_seconds() <= 120


def test_fail_refuses_an_error_text_past_the_limit(db: Conn) -> None:
    make_task(db, make_project(db))
    held = claim(db)
    with pytest.raises(psycopg.Error) as caught:
        db.execute(
            "select * from public.taskclaim_fail(%s, 'w', null, %s)",
            (held["task_id"], "e" * (limits.MAX_ERROR_LENGTH + 1)),
        )
    assert caught.value.sqlstate == "TC400"
    assert task(db, held["task_id"])["status"] == "In Progress"


# What jsonb can hold at all (no NUL, no lone surrogates); the numbers reach past the safe range.
texts = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=5)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values, depth=st.integers(min_value=1, max_value=6))
def test_sql_and_python_agree_on_which_json_values_can_be_stored(db: Conn, value: Any, depth: int) -> None:
    row = db.execute(
        "select public.taskclaim_json_problem(%s::jsonb) as problem", (json.dumps(value),)
    ).fetchone()
    assert row is not None
    assert (row["problem"] is None) == (limits.json_problem(value, max_depth=limits.MAX_JSON_DEPTH) is None)
    wrapped = nested(limits.MAX_JSON_DEPTH - depth)
    row = db.execute(
        "select public.taskclaim_json_problem(%s::jsonb) as problem", (json.dumps([wrapped, value]),)
    ).fetchone()
    assert row is not None
    assert (row["problem"] is None) == (limits.json_problem([wrapped, value]) is None)
