"""Batch claims: ``POST /functions/v1/claim-tasks`` and ``TaskClient.claim_many``, on both paths."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from taskclaim.client import ClientError, TaskClient
from tests.acceptance.conftest import SERVICE_KEY, Credentials, Server, bearer
from tests.acceptance.test_long_poll_and_metrics import claim_in_background
from tests.helpers import Conn, long_polls_waiting, make_project, make_task, make_tasks, status_counts, task
from tests.processes import free_port

CLAIM_TASKS = "/functions/v1/claim-tasks"
CLAIM_URL = "/functions/v1/claim-next-task"


def oldest_first(db: Conn, project: uuid.UUID, count: int) -> list[str]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [str(make_task(db, project, created_at=start + timedelta(seconds=n))) for n in range(count)]


def test_a_batch_is_the_oldest_tasks_in_order_then_the_rest_then_204(db: Conn, http: httpx.Client) -> None:
    ids = oldest_first(db, make_project(db), 5)
    first = http.post(CLAIM_TASKS, json={"max_tasks": 3, "worker_id": "w"}, headers=bearer(SERVICE_KEY))
    assert first.status_code == 200
    assert [t["task_id"] for t in first.json()["tasks"]] == ids[:3]
    for answer in first.json()["tasks"]:
        assert set(answer) >= {"task_id", "params", "task_type", "project_id", "worker_id", "attempt"}
        row = task(db, answer["task_id"])
        assert (row["status"], row["worker_id"], row["attempts"]) == ("In Progress", "w", 1)
    second = http.post(CLAIM_TASKS, json={"max_tasks": 3}, headers=bearer(SERVICE_KEY))
    assert [t["task_id"] for t in second.json()["tasks"]] == ids[3:]
    third = http.post(CLAIM_TASKS, json={"max_tasks": 3}, headers=bearer(SERVICE_KEY))
    assert (third.status_code, third.content) == (204, b"")


def test_a_users_batch_holds_only_their_tasks(db: Conn, http: httpx.Client) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    mine = set(map(str, make_tasks(db, make_project(db, alice), 3)))
    make_tasks(db, make_project(db, bob), 3)
    answer = http.post(CLAIM_TASKS, json={"max_tasks": 10}, headers=bearer(Credentials.user_jwt(alice)))
    assert {t["task_id"] for t in answer.json()["tasks"]} == mine
    assert status_counts(db) == {"In Progress": 3, "Queued": 3}


@pytest.mark.parametrize("max_tasks", [0, 101, "3", True, 2.5])
def test_bad_max_tasks_is_400_and_claims_nothing(db: Conn, http: httpx.Client, max_tasks: object) -> None:
    make_tasks(db, make_project(db), 2)
    answer = http.post(CLAIM_TASKS, json={"max_tasks": max_tasks}, headers=bearer(SERVICE_KEY))
    assert answer.status_code == 400 and "max_tasks" in answer.json()["error"]
    assert status_counts(db) == {"Queued": 2}


def test_a_waiting_batch_is_woken_by_a_new_task(db: Conn, server: Server) -> None:
    project = make_project(db)
    thread, result = claim_in_background(server, {"max_tasks": 5, "wait_seconds": 30}, path=CLAIM_TASKS)
    long_polls_waiting(server.url)
    task_id = make_task(db, project)
    thread.join(40)
    response = result["response"]
    assert isinstance(response, httpx.Response) and response.status_code == 200
    assert [t["task_id"] for t in response.json()["tasks"]] == [str(task_id)]
    assert result["seconds"] < 4.0


@pytest.mark.edge
def test_claim_many_on_the_edge_then_on_the_rpc_path_and_completes_fenced(
    db: Conn, db_url: str, server: Server
) -> None:
    ids = oldest_first(db, make_project(db), 6)
    with TaskClient(server.url + CLAIM_URL, SERVICE_KEY, database_url=db_url) as client:
        edge = client.claim_many(3, worker_id="edge-w", lease_seconds=60)
        assert client.last_path == "edge"
    closed = f"http://127.0.0.1:{free_port()}{CLAIM_URL}"
    with TaskClient(closed, SERVICE_KEY, database_url=db_url, backoff=0.01) as client:
        rpc = client.claim_many(5, worker_id="rpc-w", lease_seconds=60)
        assert client.last_path == "rpc"
        assert client.claim_many(5) == []
        client.complete(rpc[0], result={"ok": True})
    assert [t.task_id for t in edge] == ids[:3] and [t.task_id for t in rpc] == ids[3:]
    assert {task(db, t.task_id)["worker_id"] for t in edge} == {"edge-w"}
    assert task(db, rpc[0].task_id)["status"] == "Complete"
    assert status_counts(db) == {"Complete": 1, "In Progress": 5}


def test_claim_many_refused_is_an_error_not_a_fallback(db: Conn, db_url: str, server: Server) -> None:
    make_tasks(db, make_project(db), 2)
    with TaskClient(server.url + CLAIM_URL, SERVICE_KEY, database_url=db_url) as client:
        with pytest.raises(ClientError) as raised:
            client.claim_many(1000)
        assert raised.value.status == 400
        assert client.stats["rpc"] == 0
    assert status_counts(db) == {"Queued": 2}


@pytest.mark.edge
@pytest.mark.slow
def test_batching_clients_on_both_paths_claim_each_task_once(db: Conn, db_url: str, server: Server) -> None:
    expected = {str(t) for t in make_tasks(db, make_project(db), 1500)}
    claimed: list[str] = []
    lock = threading.Lock()

    def run(url: str) -> None:
        with TaskClient(url, SERVICE_KEY, database_url=db_url, backoff=0.01) as client:
            while batch := client.claim_many(7, lease_seconds=600):
                with lock:
                    claimed.extend(t.task_id for t in batch)

    closed = f"http://127.0.0.1:{free_port()}{CLAIM_URL}"
    urls = [server.url + CLAIM_URL] * 4 + [closed] * 4
    threads = [threading.Thread(target=run, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(claimed) == len(set(claimed)) == 1500
    assert set(claimed) == expected
    assert status_counts(db) == {"In Progress": 1500}
