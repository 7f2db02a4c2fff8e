"""heartbeat-tasks, on both runtimes: many leases extended in one request, each item answered on its own,
so one stale, unknown or foreign item never fails the others, and a user's token extends only that user's."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from taskclaim import limits
from taskclaim.client import NotHeld, Task, TaskClient
from taskclaim.worker import Worker, WorkerConfig
from tests.acceptance.conftest import SERVICE_KEY, Credentials, Server
from tests.acceptance.test_complete_tasks import requests
from tests.acceptance.test_lifecycle import claim, holder, post
from tests.acceptance.test_supabase_headless import closed_port_url
from tests.helpers import Conn, make_project, make_task, task


def results(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def lease_of(db: Conn, task_id: Any) -> datetime:
    expires: datetime = task(db, task_id)["lease_expires_at"]
    return expires


def test_each_item_is_answered_on_its_own_in_order(db: Conn, http: httpx.Client) -> None:
    project = make_project(db)
    ids = [make_task(db, project) for _ in range(2)]
    first = claim(http, "w1", lease_seconds=60)
    second = claim(http, "w2", lease_seconds=60)
    before = lease_of(db, ids[1])
    items = [
        {**holder(first), "lease_seconds": 600},
        {**holder(second), "worker_id": "someone-else"},
        {"task_id": str(uuid.uuid4()), "worker_id": "w", "attempt": 1},
    ]
    answers = results(post(http, "heartbeat-tasks", {"tasks": items}))
    assert [a["status_code"] for a in answers] == [200, 409, 404]
    assert [a["task_id"] for a in answers] == [item["task_id"] for item in items]
    assert answers[0]["lease_expires_at"] and answers[1]["error"] and answers[2]["error"]
    assert (lease_of(db, ids[0]) - datetime.now(lease_of(db, ids[0]).tzinfo)).total_seconds() > 500
    assert lease_of(db, ids[1]) == before  # the stale item changed nothing


def test_an_id_given_twice_is_extended_twice(db: Conn, http: httpx.Client) -> None:
    make_task(db, make_project(db))
    held = holder(claim(http, "w"))
    answers = results(post(http, "heartbeat-tasks", {"tasks": [held, held]}))
    assert [a["status_code"] for a in answers] == [200, 200]


def test_a_users_token_cannot_extend_another_users_lease(db: Conn, http: httpx.Client) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    bobs = make_task(db, make_project(db, bob))
    make_task(db, make_project(db, alice))
    bobs_claim = claim(http, "bob-worker", Credentials.user_jwt(bob), lease_seconds=60)
    alices_claim = claim(http, "alice-worker", Credentials.user_jwt(alice))
    before = lease_of(db, bobs)
    items = [{**holder(bobs_claim), "lease_seconds": 3600}, holder(alices_claim)]
    answers = results(post(http, "heartbeat-tasks", {"tasks": items}, Credentials.user_jwt(alice)))
    assert [a["status_code"] for a in answers] == [404, 200]
    assert lease_of(db, bobs) == before


@pytest.mark.parametrize(
    ("items", "names"),
    [
        ([], "tasks"),
        ([{"task_id": str(uuid.uuid4()), "worker_id": "w"}] * limits.MAX_HEARTBEAT_TASKS, "tasks"),
        ([{"task_id": str(uuid.uuid4()), "worker_id": ""}], "worker_id"),
        ([{"task_id": str(uuid.uuid4()), "worker_id": "w", "lease_seconds": 0}], "lease_seconds"),
        ([{"task_id": str(uuid.uuid4()), "worker_id": "w", "result": 1}], "result"),
        (["not an object"], "object"),
    ],
)
def test_a_bad_item_refuses_the_whole_request_and_changes_nothing(
    db: Conn, http: httpx.Client, items: list[Any], names: str
) -> None:
    task_id = make_task(db, make_project(db))
    held = {**holder(claim(http, "w", lease_seconds=60)), "lease_seconds": 3600}
    before = lease_of(db, task_id)
    response = post(http, "heartbeat-tasks", {"tasks": [held, *items] if items else []})
    assert response.status_code == 400, response.text
    assert names in response.json()["error"]
    assert lease_of(db, task_id) == before


def test_the_client_extends_many_and_answers_each_over_http_and_the_fallback(
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
            held = client.claim_many(2, worker_id="w", lease_seconds=60)
            stale = dataclasses.replace(held[1], worker_id="not-me")
            outcomes = client.heartbeat_many([held[0], stale, held[1]], lease_seconds=900)
            assert isinstance(outcomes[0], dict) and outcomes[0]["task_id"] == held[0].task_id
            assert outcomes[0]["lease_expires_at"]
            assert isinstance(outcomes[1], NotHeld) and outcomes[1].status == 409
            assert isinstance(outcomes[2], dict)
            expires = lease_of(db, held[1].task_id)
            assert (expires - datetime.now(expires.tzinfo)).total_seconds() > 800
        assert http_client.last_path == "edge" and rpc.last_path == "rpc"


def test_the_worker_extends_its_running_tasks_leases_together(db: Conn, server: Server) -> None:
    """Four tasks run at once past their 1 s lease, beaten every 0.2 s: they finish Complete (the leases
    held), and on the Python service the beats went as heartbeat-tasks calls, none as heartbeat."""
    ids = [make_task(db, make_project(db), task_type="long") for _ in range(4)]
    before = requests(server)
    started = threading.Barrier(4)
    config = WorkerConfig(
        concurrency=4, exit_when_empty=True, progress=False, lease_seconds=1, heartbeat_interval=0.2
    )
    with TaskClient(server.url + "/functions/v1/claim-next-task", SERVICE_KEY) as client:
        worker = Worker(client, config)

        @worker.handler("long")
        def long(claimed: Task) -> str:
            started.wait(10)
            time.sleep(2.5)
            return claimed.task_id

        worker.run()
    assert [task(db, task_id)["status"] for task_id in ids] == ["Complete"] * 4
    assert worker.counts["complete"] == 4 and worker.counts["lost"] == 0
    if server.runtime == "python":
        after = requests(server)
        assert after.get("heartbeat", 0) == before.get("heartbeat", 0)
        beats = after["heartbeat-tasks"] - before.get("heartbeat-tasks", 0)
        assert 3 <= beats <= 20, beats  # about one call per 0.2 s for all four, not four
