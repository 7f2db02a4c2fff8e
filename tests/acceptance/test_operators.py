"""Operators over HTTP, on both runtimes: get one task, list pages of them, cancel, retry; each scoped
like a claim (the service key sees every user's tasks, a user's token only that user's)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import SERVICE_KEY, bearer
from tests.helpers import Conn, make_project, make_task, personal_token, task

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def post(http: httpx.Client, name: str, body: dict[str, Any], token: str = SERVICE_KEY) -> httpx.Response:
    return http.post(f"/functions/v1/{name}", json=body, headers=bearer(token))


def claim(http: httpx.Client, worker: str = "w") -> dict[str, Any]:
    response = post(http, "claim-next-task", {"worker_id": worker})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_get_task_shows_every_field_and_another_users_task_is_404(db: Conn, http: httpx.Client) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    project = make_project(db, alice)
    task_id = make_task(db, project, task_type="render", params={"frame": 3})
    held = claim(http, "gpu-1")
    assert post(http, "fail-task", {**_holder(held), "error": "out of memory"}).status_code == 200
    answer = post(http, "get-task", {"task_id": str(task_id)}, personal_token(db, alice))
    assert answer.status_code == 200
    shown = answer.json()
    assert shown["task_id"] == str(task_id) and shown["user_id"] == str(alice)
    assert (shown["status"], shown["error"], shown["attempts"], shown["max_attempts"]) == (
        "Failed",
        "out of memory",
        1,
        3,
    )
    assert (shown["params"], shown["result"], shown["worker_id"]) == ({"frame": 3}, None, "gpu-1")
    assert shown["project_id"] == str(project) and shown["dependant_on"] is None
    for field in ("created_at", "updated_at", "generation_started_at", "generation_processed_at"):
        assert datetime.fromisoformat(shown[field]).tzinfo is not None, field
    refused = post(http, "get-task", {"task_id": str(task_id)}, personal_token(db, bob))
    assert refused.status_code == 404 and refused.json()["error"]
    assert post(http, "get-task", {"task_id": str(uuid.uuid4())}).status_code == 404


def test_list_tasks_pages_newest_first_through_every_task_once(db: Conn, http: httpx.Client) -> None:
    project = make_project(db)
    ids = [make_task(db, project, created_at=T0 + timedelta(seconds=i)) for i in range(23)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        body: dict[str, Any] = {"limit": 5} | ({"cursor": cursor} if cursor else {})
        answer = post(http, "list-tasks", body)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        seen += [t["task_id"] for t in page["tasks"]]
        assert all("params" not in t and "result" not in t for t in page["tasks"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(i) for i in reversed(ids)] and pages == 5
    oldest = post(http, "list-tasks", {"order": "oldest", "limit": 2}).json()["tasks"]
    assert [t["task_id"] for t in oldest] == [str(ids[0]), str(ids[1])]


def test_list_tasks_filters_and_keeps_to_the_callers_scope(db: Conn, http: httpx.Client) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alices, bobs = make_project(db, alice), make_project(db, bob)
    make_task(db, alices, task_type="render", created_at=T0)
    mine = make_task(db, alices, task_type="encode", created_at=T0 + timedelta(seconds=1))
    make_task(db, bobs, task_type="encode", created_at=T0 + timedelta(seconds=2))
    token = personal_token(db, alice)

    def listed(body: dict[str, Any], as_token: str = SERVICE_KEY) -> list[str]:
        answer = post(http, "list-tasks", body, as_token)
        assert answer.status_code == 200, answer.text
        return [t["task_id"] for t in answer.json()["tasks"]]

    assert len(listed({})) == 3
    assert listed({"task_type": "encode"}, token) == [str(mine)]
    assert len(listed({}, token)) == 2  # never Bob's
    assert listed({"project_id": str(bobs)}, token) == []
    held = claim(http, "gpu-7")
    assert listed({"status": "In Progress"}) == [held["task_id"]]
    assert listed({"worker_id": "gpu-7"}) == [held["task_id"]]


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 501},
        {"limit": 0},
        {"cursor": "not-a-cursor"},
        {"status": "Sleeping"},
        {"order": "sideways"},
        {"task_type": ""},
        {"junk": 1},
    ],
    ids=["limit-high", "limit-zero", "cursor", "status", "order", "empty-type", "unknown-field"],
)
def test_bad_list_requests_are_400(http: httpx.Client, body: dict[str, Any]) -> None:
    answer = post(http, "list-tasks", body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]


def test_cancel_a_queued_task_cancels_its_dependants_and_an_ended_one_is_409(
    db: Conn, http: httpx.Client
) -> None:
    project = make_project(db)
    parent = make_task(db, project)
    child = make_task(db, project, dependant_on=parent)
    answer = post(http, "cancel-task", {"task_id": str(parent), "reason": "wrong scene"})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["error"]) == ("Cancelled", "wrong scene")
    assert task(db, child)["status"] == "Cancelled"
    again = post(http, "cancel-task", {"task_id": str(parent)})
    assert again.status_code == 409 and "ended" in again.json()["error"]


def test_a_holder_of_a_cancelled_task_gets_409(db: Conn, http: httpx.Client) -> None:
    make_task(db, make_project(db))
    held = claim(http)
    assert post(http, "cancel-task", {"task_id": held["task_id"]}).status_code == 200
    for name in ("complete-task", "heartbeat", "fail-task", "release-task"):
        assert post(http, name, _holder(held)).status_code == 409, name
    assert task(db, held["task_id"])["status"] == "Cancelled"


def test_retry_requeues_a_failed_task_and_the_dependants_it_cancelled(db: Conn, http: httpx.Client) -> None:
    project = make_project(db)
    parent = make_task(db, project, max_attempts=1, created_at=T0)
    child = make_task(db, project, dependant_on=parent)
    grandchild = make_task(db, project, dependant_on=child)
    held = claim(http)
    assert post(http, "fail-task", {**_holder(held), "error": "boom"}).status_code == 200
    assert [task(db, t)["status"] for t in (child, grandchild)] == ["Cancelled", "Cancelled"]
    answer = post(http, "retry-task", {"task_id": str(parent)})
    assert answer.status_code == 200, answer.text
    shown = answer.json()
    assert (shown["status"], shown["attempts"], shown["error"], shown["dependants_requeued"]) == (
        "Queued",
        0,
        None,
        2,
    )
    assert [(task(db, t)["status"], task(db, t)["blocked"]) for t in (child, grandchild)] == [
        ("Queued", True),
        ("Queued", True),
    ]
    again = claim(http)  # the parent, with a fresh attempt budget; the blocked dependants wait
    assert again["task_id"] == str(parent)
    assert post(http, "complete-task", _holder(again)).status_code == 200
    assert claim(http)["task_id"] == str(child)


def test_retry_refuses_what_cannot_run_and_another_users_task(db: Conn, http: httpx.Client) -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    project = make_project(db, owner)
    queued = make_task(db, project, created_at=T0 + timedelta(seconds=5))
    parent = make_task(db, project, created_at=T0)
    child = make_task(db, project, dependant_on=parent)
    assert post(http, "cancel-task", {"task_id": str(parent)}).status_code == 200
    not_ended = post(http, "retry-task", {"task_id": str(queued)})
    assert not_ended.status_code == 409 and "Queued" in not_ended.json()["error"]
    orphan = post(http, "retry-task", {"task_id": str(child)})
    assert orphan.status_code == 409 and str(parent) in orphan.json()["error"]
    stranger = post(http, "retry-task", {"task_id": str(parent)}, personal_token(db, other))
    assert stranger.status_code == 404
    assert post(http, "cancel-task", {"task_id": str(queued)}, personal_token(db, other)).status_code == 404
    assert (task(db, parent)["status"], task(db, queued)["status"]) == ("Cancelled", "Queued")


def _holder(claimed: dict[str, Any]) -> dict[str, Any]:
    return {k: claimed[k] for k in ("task_id", "worker_id", "attempt")}
