"""Grants and Row Level Security, exercised with the real roles as PostgREST sets them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.helpers import Conn, make_project, make_task, task

QUEUE_FUNCTIONS = [
    ("func_claim_task", "select * from public.func_claim_task('tasks', 'w')"),
    (
        "func_claim_user_task",
        "select * from public.func_claim_user_task('tasks', 'w', gen_random_uuid())",
    ),
    ("taskclaim_claim", "select * from public.taskclaim_claim('w')"),
    ("taskclaim_claim_batch", "select * from public.taskclaim_claim_batch(array['w'], null, 60)"),
    (
        "taskclaim_claim_batch by type",
        "select * from public.taskclaim_claim_batch(array['w'], null, 60, array['render'])",
    ),
    (
        "taskclaim_complete_batch",
        "select * from public.taskclaim_complete_batch(array[gen_random_uuid()], array['w'], array[1],"
        " array[null::jsonb], array[null::text])",
    ),
    ("taskclaim_reap", "select * from public.taskclaim_reap()"),
    ("taskclaim_delete_user", "select * from public.taskclaim_delete_user(gen_random_uuid())"),
    ("taskclaim_token_user", "select * from public.taskclaim_token_user(repeat('0', 64))"),
]


def act_as(conn: Conn, role: str, user_id: uuid.UUID | None = None) -> None:
    """What PostgREST does per request: a transaction-local role and JWT claims."""
    claims = {"role": role} | ({"sub": str(user_id)} if user_id else {})
    conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
    conn.execute("select set_config('role', %s, true)", (role,))


@pytest.fixture
def tx(db: Conn) -> Iterator[Conn]:
    """The same connection inside a transaction that is rolled back at the end."""
    db.autocommit = False
    try:
        yield db
    finally:
        db.rollback()
        db.autocommit = True


@pytest.mark.parametrize("role", ["authenticated", "anon"])
@pytest.mark.parametrize(("name", "statement"), QUEUE_FUNCTIONS)
def test_users_may_not_execute_the_queue_functions(tx: Conn, role: str, name: str, statement: str) -> None:
    act_as(tx, role, uuid.uuid4())
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        tx.execute(statement)


def test_service_role_may_execute_the_claim(tx: Conn) -> None:
    project = make_project(tx)
    task_id = make_task(tx, project)
    act_as(tx, "service_role")
    row = tx.execute("select * from public.func_claim_task('tasks', 'w')").fetchone()
    assert row is not None and row["task_id"] == task_id


def test_functions_are_security_definer_with_an_empty_search_path(db: Conn) -> None:
    rows = db.execute(
        "select p.proname, p.prosecdef, p.proconfig from pg_proc p"
        " join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'public' and (p.proname like 'taskclaim_%%' or p.proname like 'func_%%')"
    ).fetchall()
    assert len(rows) >= 10
    for row in rows:
        assert row["proconfig"] == ['search_path=""'], row["proname"]
    definers = {r["proname"] for r in rows if r["prosecdef"]}
    assert {"func_claim_task", "func_claim_user_task", "taskclaim_claim"} <= definers
    public_exec = db.execute(
        "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace,"
        " lateral aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a"
        " where n.nspname = 'public' and a.grantee = 0 and a.privilege_type = 'EXECUTE'"
        " and (p.proname like 'taskclaim_%%' or p.proname like 'func_%%')"
    ).fetchall()
    assert public_exec == []


def test_rls_shows_a_user_only_their_own_queued_tasks(tx: Conn) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alice_queued = make_task(tx, make_project(tx, alice))
    alice_done = make_task(tx, make_project(tx, alice))
    tx.execute("update public.tasks set status = 'Complete' where id = %s", (alice_done,))
    make_task(tx, make_project(tx, bob))
    act_as(tx, "authenticated", alice)
    visible = [r["id"] for r in tx.execute("select id from public.tasks").fetchall()]
    assert visible == [alice_queued]


def test_rls_update_of_another_users_task_changes_nothing(tx: Conn) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    bobs = make_task(tx, make_project(tx, bob))
    act_as(tx, "authenticated", alice)
    cur = tx.execute("update public.tasks set status = 'In Progress', worker_id = 'x' where id = %s", (bobs,))
    assert cur.rowcount == 0
    tx.execute("reset role")
    assert task(tx, bobs)["status"] == "Queued"


@pytest.mark.parametrize("status", ["Complete", "Failed", "Cancelled", "Queued"])
def test_rls_rejects_moving_an_own_task_anywhere_but_in_progress(tx: Conn, status: str) -> None:
    alice = uuid.uuid4()
    own = make_task(tx, make_project(tx, alice))
    act_as(tx, "authenticated", alice)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # new row violates the policy
        tx.execute("update public.tasks set status = %s where id = %s", (status, own))


def test_rls_keeps_the_task_unchanged_after_a_rejected_update(tx: Conn) -> None:
    alice = uuid.uuid4()
    own = make_task(tx, make_project(tx, alice))
    act_as(tx, "authenticated", alice)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), tx.transaction():
        tx.execute("update public.tasks set status = 'Complete' where id = %s", (own,))
    tx.execute("reset role")
    assert task(tx, own)["status"] == "Queued"


@pytest.mark.parametrize("role", ["authenticated", "anon"])
def test_tokens_are_readable_by_nobody_but_the_service(tx: Conn, role: str) -> None:
    user = uuid.uuid4()
    tx.execute(
        "insert into public.user_api_token (user_id, jti_hash) values (%s, repeat('a', 64))",
        (user,),
    )
    act_as(tx, role, user)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        tx.execute("select * from public.user_api_token")


def test_service_role_reads_tokens(tx: Conn) -> None:
    tx.execute(
        "insert into public.user_api_token (user_id, jti_hash) values (%s, repeat('b', 64))",
        (uuid.uuid4(),),
    )
    act_as(tx, "service_role")
    assert len(tx.execute("select * from public.user_api_token").fetchall()) == 1


def test_rls_update_without_where_moves_only_own_ready_queued_tasks_and_gives_them_a_lease(tx: Conn) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    project = make_project(tx, alice)
    ready = make_task(tx, project)
    done = make_task(tx, project)
    tx.execute("update public.tasks set status = 'Complete' where id = %s", (done,))
    blocked = make_task(tx, project, dependant_on=make_task(tx, project))
    bobs = make_task(tx, make_project(tx, bob))
    act_as(tx, "authenticated", alice)
    tx.execute("update public.tasks set status = 'In Progress', worker_id = 'alice-laptop'")
    tx.execute("reset role")
    claimed = task(tx, ready)
    assert (claimed["status"], claimed["worker_id"], claimed["attempts"]) == (
        "In Progress",
        "alice-laptop",
        1,
    )
    assert claimed["lease_expires_at"] is not None  # so the reaper recovers it if the laptop dies
    assert task(tx, done)["status"] == "Complete"
    assert task(tx, blocked)["status"] == "Queued"
    assert task(tx, bobs)["status"] == "Queued"


@pytest.mark.parametrize(
    "statement",
    [
        "update public.tasks set status = 'In Progress', project_id = %(other)s, params = '{\"x\": 1}'",
        "update public.tasks set user_id = %(other_user)s",
        "update public.tasks set params = '{}'",
        "update public.tasks set lease_expires_at = null, status = 'In Progress'",
        "delete from public.tasks",
        "insert into public.tasks (project_id, task_type) values (%(other)s, 'x')",
        "insert into public.projects (user_id) values (%(other_user)s)",
        "update public.projects set user_id = %(other_user)s",
    ],
)
def test_rls_refuses_what_a_user_may_not_do_and_nothing_changes(tx: Conn, statement: str) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    own = make_task(tx, make_project(tx, alice))
    other = make_project(tx, bob)
    bobs = make_task(tx, other)
    before = [task(tx, own), task(tx, bobs)]
    act_as(tx, "authenticated", alice)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), tx.transaction():
        tx.execute(statement, {"other": other, "other_user": bob})
    tx.execute("reset role")
    assert [task(tx, own), task(tx, bobs)] == before
