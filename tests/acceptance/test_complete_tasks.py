"""complete-tasks, on both runtimes: many completions in one request, each answered on its own, so one
stale, unknown or foreign item never fails the others, and a user's token completes only that user's."""

from __future__ import annotations

import dataclasses
import re
import threading
import uuid
from typing import Any

import httpx
import pytest

from taskclaim import limits
from taskclaim.client import NotHeld, Task, TaskClient
from taskclaim.worker import Worker, WorkerConfig
from tests.acceptance.conftest import SERVICE_KEY, Credentials, Server
from tests.acceptance.test_lifecycle import claim, holder, post
from tests.acceptance.test_supabase_headless import closed_port_url
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


def test_the_client_completes_many_and_answers_each_over_http_and_the_fallback(
    db: Conn, db_url: str, server: Server
) -> None:
    project = make_project(db)
    for _ in range(4):
        make_task(db, project)
    url = server.url + "/functions/v1/claim-next-task"
    with (
        TaskClient(url, SERVICE_KEY) as http_client,
        TaskClient(closed_port_url(), None, database_url=db_url) as rpc,
    ):
        for client in (http_client, rpc):
            held = client.claim_many(2, worker_id="w")
            stale = dataclasses.replace(held[1], worker_id="not-me")
            outcomes = client.complete_many([(held[0], {"ok": 1}), (stale, None), (held[1], [1, 2])])
            assert isinstance(outcomes[0], dict) and outcomes[0]["status"] == "Complete"
            assert isinstance(outcomes[1], NotHeld) and outcomes[1].status == 409
            assert isinstance(outcomes[2], dict) and outcomes[2]["task_id"] == held[1].task_id
            assert task(db, held[1].task_id)["result"] == [1, 2]
        assert http_client.last_path == "edge" and rpc.last_path == "rpc"


def test_the_worker_sends_what_finished_together_in_one_call(db: Conn, server: Server) -> None:
    """Ten handlers return at the same moment (a barrier): their completions share statements (one
    transaction's now() each), where one request per task would give each its own."""
    ids = [make_task(db, make_project(db), task_type="together") for _ in range(30)]
    barrier = threading.Barrier(10)
    before = requests(server)
    with TaskClient(server.url + "/functions/v1/claim-next-task", SERVICE_KEY) as client:
        worker = Worker(client, WorkerConfig(concurrency=10, exit_when_empty=True, progress=False))

        @worker.handler("together")
        def together(claimed: Task) -> dict[str, str]:
            barrier.wait(10)
            return {"done": claimed.task_id}

        worker.run()
    rows = [task(db, task_id) for task_id in ids]
    assert [row["status"] for row in rows] == ["Complete"] * 30
    assert all(row["result"] == {"done": str(row["id"])} for row in rows)
    statements = {row["generation_processed_at"] for row in rows}
    assert len(statements) <= 10, len(statements)  # the Edge runs one statement per request
    if server.runtime == "python":  # the service's own count of requests by route
        after = requests(server)
        assert after.get("complete-task", 0) == before.get("complete-task", 0)
        # Each batch went either as a complete-tasks call or on the next claim (claim-tasks' `complete`).
        assert after.get("complete-tasks", 0) - before.get("complete-tasks", 0) <= 10
        assert after["claim-tasks"] - before.get("claim-tasks", 0) <= 10


def requests(server: Server) -> dict[str, float]:
    """Requests answered 200 by route, from the Python service's /metrics (the Edge has none)."""
    if server.runtime != "python":
        return {}
    found = re.findall(
        r'^taskclaim_http_requests_total\{route="([^"]+)",status="200"\} (\S+)$',
        httpx.get(server.url + "/metrics").text,
        flags=re.MULTILINE,
    )
    return {route: float(count) for route, count in found}
