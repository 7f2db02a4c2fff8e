"""The plan's claim functions on a real PostgreSQL: order, readiness, scoping, exactly-once, cost."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from taskclaim.queries import query
from tests.helpers import Conn, explain_buffers, make_project, make_task, make_tasks, status_counts, task

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def claim(conn: Conn, worker: str = "w1") -> dict[str, object] | None:
    return conn.execute("select * from public.func_claim_task('tasks', %s)", (worker,)).fetchone()


def claim_user(conn: Conn, user_id: uuid.UUID, worker: str = "w1") -> dict[str, object] | None:
    return conn.execute(
        "select * from public.func_claim_user_task('tasks', %s, %s)", (worker, user_id)
    ).fetchone()


def test_oldest_ready_task_first(db: Conn) -> None:
    project = make_project(db)
    newest = make_task(db, project, created_at=T0 + timedelta(seconds=2))
    oldest = make_task(db, project, created_at=T0)
    middle = make_task(db, project, created_at=T0 + timedelta(seconds=1))
    assert [claim(db)["task_id"] for _ in range(3)] == [oldest, middle, newest]  # type: ignore[index]
    assert claim(db) is None


def test_claim_returns_the_plan_columns_and_marks_the_row(db: Conn) -> None:
    project = make_project(db)
    task_id = make_task(db, project, task_type="upscale", params={"scale": 2})
    row = claim(db, "gpu-7")
    assert row is not None
    assert (row["task_id"], row["params"], row["task_type"], row["project_id"]) == (
        task_id,
        {"scale": 2},
        "upscale",
        project,
    )
    stored = task(db, task_id)
    assert stored["status"] == "In Progress"
    assert stored["worker_id"] == "gpu-7"
    assert stored["generation_started_at"] is not None
    assert stored["attempts"] == 1
    assert stored["lease_expires_at"] > stored["generation_started_at"]


def test_ties_on_created_at_are_broken_by_id(db: Conn) -> None:
    project = make_project(db)
    ids = sorted(make_task(db, project, created_at=T0) for _ in range(5))
    assert [claim(db)["task_id"] for _ in range(5)] == ids  # type: ignore[index]


def test_blocked_task_is_skipped_until_its_parent_completes(db: Conn) -> None:
    project = make_project(db)
    parent = make_task(db, project, created_at=T0)
    child = make_task(db, project, created_at=T0 - timedelta(days=1), dependant_on=parent)
    assert task(db, child)["blocked"] is True
    first = claim(db)
    assert first is not None and first["task_id"] == parent  # the older child is not ready
    assert claim(db) is None
    db.execute("update public.tasks set status = 'Complete' where id = %s", (parent,))
    assert task(db, child)["blocked"] is False
    second = claim(db)
    assert second is not None and second["task_id"] == child


def test_task_whose_parent_is_complete_is_ready_at_once(db: Conn) -> None:
    project = make_project(db)
    parent = make_task(db, project)
    db.execute("update public.tasks set status = 'Complete' where id = %s", (parent,))
    child = make_task(db, project, dependant_on=parent)
    assert task(db, child)["blocked"] is False
    assert claim(db)["task_id"] == child  # type: ignore[index]


def test_failed_parent_cancels_its_dependants(db: Conn) -> None:
    project = make_project(db)
    parent = make_task(db, project)
    child = make_task(db, project, dependant_on=parent)
    grandchild = make_task(db, project, dependant_on=child)
    db.execute("update public.tasks set status = 'Failed' where id = %s", (parent,))
    for dependant in (child, grandchild):
        row = task(db, dependant)
        assert row["status"] == "Cancelled"
        assert "dependency" in row["error"]
    assert claim(db) is None


def test_user_claim_takes_only_that_users_tasks(db: Conn) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alice_project = make_project(db, alice)
    bob_project = make_project(db, bob)
    bob_task = make_task(db, bob_project, created_at=T0)
    alice_task = make_task(db, alice_project, created_at=T0 + timedelta(seconds=1))
    assert claim_user(db, alice)["task_id"] == alice_task  # type: ignore[index]
    assert claim_user(db, alice) is None
    assert claim_user(db, uuid.uuid4()) is None
    assert claim_user(db, bob)["task_id"] == bob_task  # type: ignore[index]


def test_user_owns_tasks_of_all_their_projects_and_the_plans_project_id(db: Conn) -> None:
    user = uuid.uuid4()
    plan_style = make_project(db, user, project_id=user)  # project id equal to its user's id
    other = make_project(db, user)
    first = make_task(db, plan_style, created_at=T0)
    second = make_task(db, other, created_at=T0 + timedelta(seconds=1))
    assert [claim_user(db, user)["task_id"] for _ in range(2)] == [first, second]  # type: ignore[index]


def test_sixteen_connections_claim_two_thousand_tasks_exactly_once(db: Conn, db_url: str) -> None:
    project = make_project(db)
    make_tasks(db, project, 2000)
    claimed: list[list[uuid.UUID]] = [[] for _ in range(16)]
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                while True:
                    row = conn.execute(
                        "select task_id from public.func_claim_task('tasks', %s)", (f"w{index}",)
                    ).fetchone()
                    if row is None:
                        return
                    claimed[index].append(row[0])
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    every = [t for chunk in claimed for t in chunk]
    assert len(every) == 2000
    assert len(set(every)) == 2000
    assert status_counts(db) == {"In Progress": 2000}
    assert sum(1 for chunk in claimed if chunk) > 1  # the work really was shared


@pytest.mark.parametrize("table", ["projects", "tasks; drop table projects", "", "public.projects"])
def test_claim_refuses_any_table_but_tasks(db: Conn, table: str) -> None:
    project = make_project(db)
    make_task(db, project)
    with pytest.raises(psycopg.errors.UndefinedTable):
        db.execute("select * from public.func_claim_task(%s, 'w')", (table,))
    with pytest.raises(psycopg.errors.UndefinedTable):
        db.execute("select * from public.func_claim_user_task(%s, 'w', %s)", (table, uuid.uuid4()))
    assert status_counts(db) == {"Queued": 1}
    assert db.execute("select count(*) as n from public.projects").fetchone() == {"n": 1}


@pytest.mark.slow
def test_claim_cost_does_not_grow_with_finished_or_blocked_tasks(db: Conn) -> None:
    user = uuid.uuid4()
    project = make_project(db, user)
    db.execute(
        "insert into public.tasks (project_id, task_type, status, created_at)"
        " select %s, 'old', 'Complete', %s + n * interval '1 ms' from generate_series(1, 200000) n",
        (project, T0 - timedelta(days=30)),
    )
    parent = make_task(db, project, created_at=T0 - timedelta(days=20))
    db.execute("update public.tasks set status = 'In Progress' where id = %s", (parent,))
    db.execute(
        "insert into public.tasks (project_id, task_type, dependant_on, created_at)"
        " select %s, 'blocked', %s, %s + n * interval '1 ms' from generate_series(1, 20000) n",
        (project, parent, T0 - timedelta(days=10)),
    )
    make_tasks(db, project, 50)  # the ready tasks, newer than everything above
    db.execute("analyze public.tasks")
    claim(db)  # warm the session's plan and catalog caches
    claim_user(db, user)
    claimed_before = status_counts(db)["In Progress"]

    service = explain_buffers(db, "select * from public.func_claim_task('tasks', 'w')", ())
    user_claim = explain_buffers(db, "select * from public.func_claim_user_task('tasks', 'w', %s)", (user,))
    assert status_counts(db)["In Progress"] == claimed_before + 2  # both EXPLAINs really claimed
    assert 0 < service < 200, service
    assert 0 < user_claim < 200, user_claim


@pytest.mark.slow
def test_a_users_claim_does_not_read_past_another_users_backlog(db: Conn) -> None:
    """Alice's 60,000 ready tasks are older than Bob's: Bob's claim reads his own tasks only (before,
    the cached plan walked the all-users index past every one of Alice's)."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    db.execute(
        "insert into public.tasks (project_id, task_type, created_at)"
        " select %s, 'render', %s + n * interval '1 ms' from generate_series(1, 60000) n",
        (make_project(db, alice), T0 - timedelta(days=1)),
    )
    bobs = make_project(db, bob)
    make_tasks(db, bobs, 20)
    db.execute("analyze public.tasks")
    for _ in range(6):  # past the five custom plans PL/pgSQL makes before it may cache a generic one
        claim_user(db, bob)
    plan_rpc = explain_buffers(db, "select * from public.func_claim_user_task('tasks', 'w', %s)", (bob,))
    batch = explain_buffers(db, "select * from public.taskclaim_claim_batch(array['a', 'b'], %s, 60)", (bob,))
    assert 0 < plan_rpc < 200, plan_rpc  # 1,297 before
    assert 0 < batch < 200, batch
    assert status_counts(db) == {"Queued": 60_000 + 20 - 9, "In Progress": 9}


def test_only_one_reaper_at_a_time(db: Conn, db_url: str) -> None:
    project = make_project(db)
    for _ in range(3):
        make_task(db, project)
    db.execute(
        "update public.tasks set status = 'In Progress', worker_id = 'gone', attempts = 1,"
        " lease_expires_at = now() - interval '1 second'"
    )
    with psycopg.connect(db_url) as leader:
        leader.execute("select pg_advisory_xact_lock(hashtext('taskclaim.reaper'))")  # another replica reaps
        assert db.execute(query("reap_if_leader"), {"limit": 10}).fetchall() == []
        assert status_counts(db) == {"In Progress": 3}
        leader.rollback()
    assert len(db.execute(query("reap_if_leader"), {"limit": 10}).fetchall()) == 3
    assert status_counts(db) == {"Queued": 3}


@pytest.mark.slow
def test_vacuum_cleans_the_ready_index_behind_a_large_finished_backlog(db: Conn) -> None:
    """Behind a large backlog of finished rows, VACUUM would skip the indexes (under 2 % of pages dead) and
    leave dead entries at the head of the ready index; the table's vacuum_index_cleanup = on stops that.
    Without it this measures about 150 buffers per claim."""
    project = make_project(db)
    db.execute("set session_replication_role = replica")  # a bulk load of finished tasks, triggers off
    db.execute(
        "insert into public.tasks (project_id, user_id, task_type, status, created_at, params)"
        " select %s, (select user_id from public.projects where id = %s), 'old', 'Complete',"
        " %s + n * interval '1 ms', jsonb_build_object('pad', repeat('x', 1000))"
        " from generate_series(1, 200000) n",
        (project, project, T0 - timedelta(days=30)),
    )
    db.execute("set session_replication_role = origin")
    make_tasks(db, project, 25_000)  # under 2 % of the table's pages once dead
    db.execute("select count(*) from generate_series(1, 5000), lateral public.func_claim_task('tasks', 'w')")
    db.execute("delete from public.tasks where status <> 'Complete'")  # claimed, and withdrawn
    make_tasks(db, project, 1_000)
    db.execute("vacuum public.tasks")
    claim(db)
    buffers = explain_buffers(db, "select * from public.func_claim_task('tasks', 'w')", ())
    assert buffers < 45, buffers
