"""claim-tasks with `complete`, on both runtimes: the tasks a worker finished ride on its next claim, so a
busy worker makes one request per round. Each completion is answered on its own as complete-tasks answers
it; they are made whatever the claim finds, before any wait ends; a user's token completes only that
user's; a bad item refuses the whole request and changes nothing."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
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


def carry(http: httpx.Client, items: list[dict[str, Any]], token: str = SERVICE_KEY, **extra: Any) -> Any:
    body = {"worker_id": "carrier", "max_tasks": 2, "complete": items, **extra}
    response = post(http, "claim-tasks", body, token)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_finished_tasks_are_completed_and_the_next_ones_claimed_in_one_request(
    db: Conn, http: httpx.Client
) -> None:
    project = make_project(db)
    ids = [make_task(db, project) for _ in range(4)]
    first, second = claim(http, "w1"), claim(http, "w2")
    stale = {**holder(second), "worker_id": "not-me"}
    answer = carry(http, [{**holder(first), "result": {"frames": 24}}, stale])
    assert [t["task_id"] for t in answer["tasks"]] == [str(ids[2]), str(ids[3])]
    assert all(t["worker_id"] == "carrier" for t in answer["tasks"])
    assert [c["status_code"] for c in answer["completed"]] == [200, 409]
    assert answer["completed"][0]["task_id"] == str(ids[0]) and answer["completed"][0]["status"] == "Complete"
    assert answer["completed"][1]["error"]
    assert (task(db, ids[0])["status"], task(db, ids[0])["result"]) == ("Complete", {"frames": 24})
    assert task(db, ids[1])["status"] == "In Progress"  # the stale item changed nothing


def test_with_nothing_to_claim_the_completions_are_still_made_and_answered(
    db: Conn, http: httpx.Client
) -> None:
    task_id = make_task(db, make_project(db))
    held = holder(claim(http, "w"))
    answer = carry(http, [held])
    assert answer == {"tasks": [], "completed": [answer["completed"][0]]}  # a 200, not a 204
    assert answer["completed"][0]["status_code"] == 200
    assert task(db, task_id)["status"] == "Complete"


def test_a_long_poll_does_not_hold_its_completions_back(db: Conn, http: httpx.Client) -> None:
    task_id = make_task(db, make_project(db))
    held = holder(claim(http, "w"))
    answers: list[Any] = []
    poll = threading.Thread(target=lambda: answers.append(carry(http, [held], wait_seconds=3)))
    started = time.monotonic()
    poll.start()
    while task(db, task_id)["status"] != "Complete":
        assert time.monotonic() - started < 2.5, "the completion waited for the long poll"
        time.sleep(0.05)
    assert poll.is_alive()  # still waiting for a task, its completion already made
    poll.join(10)
    assert answers[0]["tasks"] == [] and answers[0]["completed"][0]["status_code"] == 200


def test_a_users_token_cannot_complete_another_users_task_on_a_claim(db: Conn, http: httpx.Client) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    bobs = make_task(db, make_project(db, bob))
    alices = make_task(db, make_project(db, alice))
    make_task(db, make_project(db, bob))  # what alice's claim must not take
    bobs_claim = claim(http, "bob-worker", Credentials.user_jwt(bob))
    alices_claim = claim(http, "alice-worker", Credentials.user_jwt(alice))
    answer = carry(http, [holder(bobs_claim), holder(alices_claim)], Credentials.user_jwt(alice))
    assert [c["status_code"] for c in answer["completed"]] == [404, 200]
    assert answer["tasks"] == []
    assert task(db, bobs)["status"] == "In Progress" and task(db, alices)["status"] == "Complete"


@pytest.mark.parametrize(
    ("items", "names"),
    [
        ([{"task_id": str(uuid.uuid4()), "worker_id": "w"}] * limits.MAX_COMPLETE_TASKS, "complete"),
        ([{"task_id": str(uuid.uuid4()), "worker_id": ""}], "worker_id"),
        ([{"task_id": str(uuid.uuid4()), "worker_id": "w", "result": {"a": "\x00"}}], "result"),
        (["not an object"], "object"),
    ],
)
def test_a_bad_item_refuses_the_whole_claim_and_changes_nothing(
    db: Conn, http: httpx.Client, items: list[Any], names: str
) -> None:
    project = make_project(db)
    make_task(db, project)
    queued = make_task(db, project)
    held = holder(claim(http, "w"))
    response = post(http, "claim-tasks", {"worker_id": "w", "complete": [held, *items]})
    assert response.status_code == 400, response.text
    assert names in response.json()["error"]
    assert task(db, held["task_id"])["status"] == "In Progress"
    assert task(db, queued)["status"] == "Queued"  # nothing was claimed either


def test_the_client_completes_and_claims_over_http_and_the_fallback(
    db: Conn, db_url: str, server: Server
) -> None:
    project = make_project(db)
    for _ in range(6):
        make_task(db, project)
    url = server.url + "/functions/v1/claim-next-task"
    with (
        TaskClient(url, SERVICE_KEY) as http_client,
        TaskClient(closed_port_url(), None, database_url=db_url) as rpc,
    ):
        for client in (http_client, rpc):
            held = client.claim_many(2, worker_id="w")
            stale = dataclasses.replace(held[1], worker_id="not-me")
            outcomes, claimed = client.complete_and_claim(
                [(held[0], {"ok": 1}), (stale, None)], 1, worker_id="next"
            )
            assert isinstance(outcomes[0], dict) and outcomes[0]["status"] == "Complete"
            assert isinstance(outcomes[1], NotHeld) and outcomes[1].status == 409
            assert [t.worker_id for t in claimed] == ["next"]
            assert task(db, held[0].task_id)["result"] == {"ok": 1}
        assert http_client.last_path == "edge" and rpc.last_path == "rpc"
        with pytest.raises(ValueError, match="at most"):
            http_client.complete_and_claim([(held[0], None)] * (limits.MAX_COMPLETE_TASKS + 1), 1)


def test_a_busy_worker_sends_its_completions_on_its_claims(db: Conn, server: Server) -> None:
    """One slot, tasks that take a moment: each finished task rides on the claim its slot frees, so the
    worker makes about one request per task instead of two."""
    ids = [make_task(db, make_project(db), task_type="steady") for _ in range(20)]
    before = requests(server)
    with TaskClient(server.url + "/functions/v1/claim-next-task", SERVICE_KEY) as client:
        worker = Worker(client, WorkerConfig(concurrency=1, exit_when_empty=True, progress=False))

        @worker.handler("steady")
        def steady(claimed: Task) -> dict[str, str]:
            time.sleep(0.01)
            return {"done": claimed.task_id}

        worker.run()
    rows = [task(db, task_id) for task_id in ids]
    assert [row["status"] for row in rows] == ["Complete"] * 20
    assert all(row["result"] == {"done": str(row["id"])} for row in rows)
    assert worker.counts["complete"] == 20
    if server.runtime == "python":  # the service's own count of requests by route
        after = requests(server)
        sent = {route: after.get(route, 0) - before.get(route, 0) for route in after}
        assert sent.get("complete-task", 0) == 0
        assert sent.get("complete-tasks", 0) <= 2, sent  # at most the last one or two, if any
        assert sent["claim-tasks"] <= 22, sent
