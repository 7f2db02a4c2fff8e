"""complete-tasks, on both runtimes: many completions in one request, each answered on its own, so one
stale, unknown or foreign item never fails the others, and a user's token completes only that user's."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from taskclaim import limits
from tests.acceptance.conftest import Credentials
from tests.acceptance.test_lifecycle import claim, holder, post
from tests.helpers import Conn, make_project, make_task, task


def codes(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [answer["status_code"] for answer in response.json()["results"]]


def test_each_item_is_answered_on_its_own_in_order(db: Conn, http: httpx.Client) -> None:
    project = make_project(db)
    ids = [make_task(db, project) for _ in range(3)]
    first, second, third = (claim(http, f"w{i}") for i in range(3))
    assert [first["task_id"], second["task_id"], third["task_id"]] == [str(i) for i in ids]
    stale = {**holder(second), "worker_id": "someone-else"}
    unknown = {"task_id": str(uuid.uuid4()), "worker_id": "w", "attempt": 1}
    items = [
        {**holder(first), "result": {"frames": 24}},
        stale,
        unknown,
        {**holder(third), "output_location": "s3://bucket/3"},
    ]
    response = post(http, "complete-tasks", {"tasks": items})
    assert codes(response) == [200, 409, 404, 200]
    answers = response.json()["results"]
    assert [a["task_id"] for a in answers] == [item["task_id"] for item in items]
    assert answers[0]["status"] == "Complete" and answers[0]["generation_processed_at"]
    assert answers[1]["error"] and answers[2]["error"]
    assert (task(db, ids[0])["status"], task(db, ids[0])["result"]) == ("Complete", {"frames": 24})
    assert task(db, ids[1])["status"] == "In Progress"  # the stale item changed nothing
    assert task(db, ids[2])["output_location"] == "s3://bucket/3"


def test_an_id_given_twice_completes_once_and_the_repeat_is_answered_as_a_retry(
    db: Conn, http: httpx.Client
) -> None:
    task_id = make_task(db, make_project(db))
    held = holder(claim(http, "w"))
    items = [{**held, "result": {"n": 1}}, {**held, "result": {"n": 2}}]
    assert codes(post(http, "complete-tasks", {"tasks": items})) == [200, 200]  # as complete-task retried
    assert task(db, task_id)["result"] == {"n": 1}


def test_a_users_token_cannot_complete_another_users_task(db: Conn, http: httpx.Client) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    bobs = make_task(db, make_project(db, bob))
    alices = make_task(db, make_project(db, alice))
    bobs_claim = claim(http, "bob-worker", Credentials.user_jwt(bob))
    alices_claim = claim(http, "alice-worker", Credentials.user_jwt(alice))
    items = [holder(bobs_claim), holder(alices_claim)]
    assert codes(post(http, "complete-tasks", {"tasks": items}, Credentials.user_jwt(alice))) == [404, 200]
    assert task(db, bobs)["status"] == "In Progress" and task(db, alices)["status"] == "Complete"


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"tasks": []}, "tasks"),
        ({"tasks": [{"task_id": str(uuid.uuid4()), "worker_id": "w"}] * limits.MAX_COMPLETE_TASKS}, "tasks"),
        ({"tasks": [{"task_id": str(uuid.uuid4()), "worker_id": ""}]}, "worker_id"),
        ({"tasks": [{"task_id": str(uuid.uuid4()), "worker_id": "w", "result": {"a": "\x00"}}]}, "result"),
        ({"tasks": [{"task_id": str(uuid.uuid4()), "worker_id": "w", "retry": True}]}, "retry"),
        ({"tasks": ["not an object"]}, "object"),
    ],
)
# Each body has the held task's item put first: one item over the limit, or one bad item after a good one.
def test_a_bad_item_refuses_the_whole_request_and_changes_nothing(
    db: Conn, http: httpx.Client, body: dict[str, Any], names: str
) -> None:
    make_task(db, make_project(db))
    held = holder(claim(http, "w"))
    response = post(http, "complete-tasks", {"tasks": [held, *body["tasks"]]} if body["tasks"] else body)
    assert response.status_code == 400, response.text
    assert names in response.json()["error"]
    assert task(db, held["task_id"])["status"] == "In Progress"
