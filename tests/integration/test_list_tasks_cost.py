"""A page of list-tasks reads an index in page order and stops: its cost does not grow with the finished
tasks behind it. Measured as shared buffers (EXPLAIN ANALYZE BUFFERS) of one page of 50 on a table of
200,000 finished tasks; BENCHMARKS.md has pages behind 10 million."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import Conn, explain_buffers, make_project

LIST = "select * from public.taskclaim_list_tasks(%s, %s::public.task_status, %s, %s, %s, %s, %s, 50)"
PAGE_BUFFERS = 100  # a page of 50: its heap pages and a few index pages; a scan of 200,000 reads 2,000+


@pytest.fixture
def crowded(db: Conn) -> dict[str, uuid.UUID]:
    """Alice's 200,000 finished tasks (with 100 failed among the oldest), then Bob's 60 newer ones."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alices, bobs = make_project(db, alice), make_project(db, bob)
    db.execute(
        "insert into public.tasks (project_id, task_type, status, created_at, attempts)"
        " select %s, 'render', case when n <= 100 then 'Failed' else 'Complete' end::public.task_status,"
        " timestamptz '2026-01-01' + n * interval '1 millisecond', 1 from generate_series(1, 200000) n",
        (alices,),
    )
    db.execute(
        "insert into public.tasks (project_id, task_type, created_at)"
        " select %s, 'encode', timestamptz '2026-02-01' + n * interval '1 second'"
        " from generate_series(1, 60) n",
        (bobs,),
    )
    db.execute("vacuum analyze public.tasks")
    return {"alice": alice, "bob": bob, "alices": alices}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scope", "status", "oldest_first"),
    [
        ("service", None, False),  # newest of everyone
        ("service", None, True),  # oldest of everyone
        ("bob", None, False),  # a user whose tasks are few, behind another's 200,000
        ("alice", None, False),  # a user with 200,000
        ("service", "Failed", False),  # the failed ones, all old, among 200,000 finished
        ("alice", "Failed", False),
    ],
)
def test_a_page_costs_the_same_however_many_tasks_have_finished(
    db: Conn, crowded: dict[str, uuid.UUID], scope: str, status: str | None, oldest_first: bool
) -> None:
    user = None if scope == "service" else crowded[scope]
    params = (user, status, None, None, None, oldest_first, None)
    rows = db.execute(LIST, params).fetchall()  # also loads the function and the catalog into the session
    first = explain_buffers(db, LIST, params)
    assert len(rows) == 50
    second = explain_buffers(db, LIST, (*params[:-1], rows[-1]["cursor"]))
    print(f"buffers: first page {first}, next page {second}")
    assert first <= PAGE_BUFFERS and second <= PAGE_BUFFERS, (first, second)
