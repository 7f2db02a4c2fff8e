"""Claims filtered by task_type over HTTP, in the client on both paths, and in the reference worker."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from taskclaim.client import TaskClient
from taskclaim.worker import Worker, WorkerConfig
from tests.acceptance.conftest import SERVICE_KEY, Server, bearer
from tests.acceptance.test_worker import ECHO, worker
from tests.helpers import Conn, make_project, make_task, status_counts, task
from tests.processes import free_port

CLAIM_URL = "/functions/v1/claim-next-task"


def mixed_queue(db: Conn) -> dict[str, list[str]]:
    project = make_project(db)
    ids: dict[str, list[str]] = {"render": [], "train": [], "upscale": []}
    for kind in ("train", "render", "upscale", "render", "train"):
        ids[kind].append(str(make_task(db, project, task_type=kind)))
    return ids


def test_claim_next_task_with_task_types_takes_only_those(db: Conn, http: httpx.Client) -> None:
    ids = mixed_queue(db)
    claimed = [
        http.post(CLAIM_URL, json={"task_types": ["render"]}, headers=bearer(SERVICE_KEY)) for _ in range(3)
    ]
    assert [r.status_code for r in claimed] == [200, 200, 204]
    assert [r.json()["task_id"] for r in claimed[:2]] == ids["render"]
    assert status_counts(db) == {"In Progress": 2, "Queued": 3}


def test_claim_tasks_with_several_types_oldest_first(db: Conn, http: httpx.Client) -> None:
    ids = mixed_queue(db)
    body = {"max_tasks": 10, "task_types": ["upscale", "train"]}
    answer = http.post("/functions/v1/claim-tasks", json=body, headers=bearer(SERVICE_KEY))
    assert [t["task_id"] for t in answer.json()["tasks"]] == [
        ids["train"][0],
        ids["upscale"][0],
        ids["train"][1],
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"task_types": []},
        {"task_types": "render"},
        {"task_types": ["render", 3]},
        {"task_types": [""]},
        {"task_types": [f"t{n}" for n in range(21)]},
        {"task_types": ["render"], "claim_id": "6f1c1d7e-8a7b-4c47-9a55-0d0e3c8b1f00"},
    ],
)
def test_bad_task_types_are_400_and_claim_nothing(
    db: Conn, http: httpx.Client, body: dict[str, object]
) -> None:
    mixed_queue(db)
    answer = http.post(CLAIM_URL, json=body, headers=bearer(SERVICE_KEY))
    assert answer.status_code == 400 and answer.json()["error"]
    assert status_counts(db) == {"Queued": 5}


@pytest.mark.edge
def test_the_client_filters_on_the_edge_and_on_the_rpc_path(db: Conn, db_url: str, server: Server) -> None:
    ids = mixed_queue(db)
    with TaskClient(server.url + CLAIM_URL, SERVICE_KEY, database_url=db_url) as client:
        edge = client.claim(task_types=["render"])
        assert client.last_path == "edge"
    closed = f"http://127.0.0.1:{free_port()}{CLAIM_URL}"
    with TaskClient(closed, SERVICE_KEY, database_url=db_url, backoff=0.01) as client:
        rpc = client.claim_many(5, task_types=["render"])
        assert client.last_path == "rpc"
    assert edge is not None and [edge.task_id] + [t.task_id for t in rpc] == ids["render"]
    assert status_counts(db) == {"In Progress": 2, "Queued": 3}


def test_a_python_worker_claims_only_the_types_it_has_handlers_for(
    db: Conn, db_url: str, server: Server
) -> None:
    ids = mixed_queue(db)
    with TaskClient(server.url + CLAIM_URL, SERVICE_KEY, database_url=db_url) as client:
        python_worker = Worker(client, WorkerConfig(exit_when_empty=True, worker_id="py", concurrency=2))

        @python_worker.handler("render")
        def render(task: object) -> dict[str, bool]:
            return {"rendered": True}

        thread = threading.Thread(target=python_worker.run)
        thread.start()
        thread.join(60)
        assert not thread.is_alive()
    for task_id in ids["render"]:
        assert (task(db, task_id)["status"], task(db, task_id)["result"]) == ("Complete", {"rendered": True})
    for task_id in ids["train"] + ids["upscale"]:
        assert (task(db, task_id)["status"], task(db, task_id)["attempts"]) == ("Queued", 0)


def test_worker_task_type_flag(db: Conn, server: Server, tmp_path: Path) -> None:
    ids = mixed_queue(db)
    process = worker(
        server,
        tmp_path,
        "typed",
        ECHO,
        "--task-type",
        "train",
        "--task-type",
        "upscale",
        "--exit-when-empty",
    )
    assert process.wait(60) == 0, process.log()
    assert {task(db, t)["status"] for t in ids["train"] + ids["upscale"]} == {"Complete"}
    assert {task(db, t)["status"] for t in ids["render"]} == {"Queued"}
