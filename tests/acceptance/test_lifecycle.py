"""The whole task life cycle over HTTP: create, claim, heartbeat, complete, fail, release, recovery."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from taskclaim import migrations
from tests.acceptance.conftest import SERVICE_KEY, Credentials, bearer
from tests.helpers import Conn, make_project, make_task, status_counts, task, wait_until

F = "/functions/v1/"


def post(http: httpx.Client, function: str, body: dict[str, Any], token: str = SERVICE_KEY) -> httpx.Response:
    return http.post(F + function, json=body, headers=bearer(token))


def claim(http: httpx.Client, worker: str, token: str = SERVICE_KEY, **extra: Any) -> dict[str, Any]:
    response = post(http, "claim-next-task", {"worker_id": worker, **extra}, token)
    assert response.status_code == 200, response.text
    return dict(response.json())


def holder(claimed: dict[str, Any]) -> dict[str, Any]:
    return {k: claimed[k] for k in ("task_id", "worker_id", "attempt")}


def test_a_task_goes_from_creation_to_complete_over_http(db: Conn, http: httpx.Client) -> None:
    project = make_project(db)
    created = post(
        http, "create-task", {"project_id": str(project), "task_type": "render", "params": {"n": 1}}
    )
    assert created.status_code == 201
    claimed = claim(http, "w1", lease_seconds=60)
    assert claimed["task_id"] == created.json()["task_id"]
    beat = post(http, "heartbeat", {**holder(claimed), "lease_seconds": 120})
    assert beat.status_code == 200
    done = post(
        http, "complete-task", {**holder(claimed), "result": {"ok": True}, "output_location": "s3://x"}
    )
    assert done.status_code == 200
    assert done.json()["status"] == "Complete"
    row = task(db, claimed["task_id"])
    assert row["status"] == "Complete"
    assert row["result"] == {"ok": True}
    assert row["output_location"] == "s3://x"
    assert row["generation_processed_at"] is not None
    # The same completion again (its answer was lost): still a success, nothing changes.
    assert post(http, "complete-task", holder(claimed)).status_code == 200


def test_an_expired_lease_requeues_then_fails_after_max_attempts(db: Conn, http: httpx.Client) -> None:
    task_id = make_task(db, make_project(db), max_attempts=2)
    first = claim(http, "w1", lease_seconds=1)
    assert first["attempt"] == 1
    wait_until(lambda: task(db, task_id)["status"] == "Queued", "the reaper to requeue")
    row = task(db, task_id)
    assert row["attempts"] == 1
    assert "lease expired" in row["error"]
    second = claim(http, "w2", lease_seconds=1)
    assert (second["task_id"], second["attempt"]) == (str(task_id), 2)
    wait_until(lambda: task(db, task_id)["status"] == "Failed", "the reaper to fail the task")
    row = task(db, task_id)
    assert "attempt 2 of 2" in row["error"]
    assert post(http, "claim-next-task", {}).status_code == 204


@pytest.mark.slow
def test_heartbeats_keep_a_short_lease_alive_through_a_long_task(db: Conn, http: httpx.Client) -> None:
    task_id = make_task(db, make_project(db))
    claimed = claim(http, "w1", lease_seconds=3)
    for _ in range(10):
        time.sleep(1)
        assert post(http, "heartbeat", {**holder(claimed), "lease_seconds": 3}).status_code == 200
    assert post(http, "complete-task", holder(claimed)).status_code == 200
    row = task(db, task_id)
    assert (row["status"], row["attempts"]) == ("Complete", 1)


def test_a_stale_holder_gets_409_and_changes_nothing(db: Conn, http: httpx.Client) -> None:
    task_id = make_task(db, make_project(db))
    a = claim(http, "worker-a", lease_seconds=1)
    wait_until(lambda: task(db, task_id)["status"] == "Queued", "A's lease to be recovered")
    b = claim(http, "worker-b", lease_seconds=60)
    assert b["task_id"] == a["task_id"]
    for function in ("complete-task", "heartbeat", "fail-task", "release-task"):
        late = {"error": "late"} if function == "fail-task" else {}
        response = post(http, function, {**holder(a), **late})
        assert response.status_code == 409, function
        assert response.json()["error"]
    row = task(db, task_id)
    assert (row["status"], row["worker_id"], row["attempts"]) == ("In Progress", "worker-b", 2)
    assert post(http, "complete-task", holder(b)).status_code == 200
    assert task(db, task_id)["status"] == "Complete"


def test_the_same_worker_id_on_a_later_attempt_is_fenced_by_the_attempt(db: Conn, http: httpx.Client) -> None:
    task_id = make_task(db, make_project(db))
    first = claim(http, "same", lease_seconds=1)
    wait_until(lambda: task(db, task_id)["status"] == "Queued", "the lease to be recovered")
    second = claim(http, "same", lease_seconds=60)
    assert post(http, "complete-task", holder(first)).status_code == 409
    assert post(http, "complete-task", holder(second)).status_code == 200


def test_completing_a_parent_unblocks_its_child_and_failing_one_cancels_it(
    db: Conn, http: httpx.Client
) -> None:
    project = str(make_project(db))
    parent = post(http, "create-task", {"project_id": project, "task_type": "a"}).json()
    child = post(
        http, "create-task", {"project_id": project, "task_type": "b", "dependant_on": parent["task_id"]}
    )
    assert child.json()["blocked"] is True
    claimed = claim(http, "w")
    assert claimed["task_id"] == parent["task_id"]
    assert post(http, "claim-next-task", {}).status_code == 204  # the child waits
    assert post(http, "complete-task", holder(claimed)).status_code == 200
    assert claim(http, "w")["task_id"] == child.json()["task_id"]

    doomed = post(http, "create-task", {"project_id": project, "task_type": "a"}).json()
    orphan = post(
        http, "create-task", {"project_id": project, "task_type": "b", "dependant_on": doomed["task_id"]}
    )
    claimed = claim(http, "w")
    assert post(http, "fail-task", {**holder(claimed), "error": "GPU on fire"}).status_code == 200
    row = task(db, orphan.json()["task_id"])
    assert row["status"] == "Cancelled"
    assert doomed["task_id"] in row["error"]


def test_fail_with_retry_requeues_until_attempts_run_out(db: Conn, http: httpx.Client) -> None:
    task_id = make_task(db, make_project(db), max_attempts=2)
    first = claim(http, "w")
    answer = post(http, "fail-task", {**holder(first), "error": "flaky", "retry": True}).json()
    assert answer["status"] == "Queued"
    second = claim(http, "w")
    answer = post(http, "fail-task", {**holder(second), "error": "flaky again", "retry": True}).json()
    assert answer["status"] == "Failed"
    row = task(db, task_id)
    assert (row["status"], row["error"], row["attempts"]) == ("Failed", "flaky again", 2)


def test_release_gives_the_task_back_without_counting_the_attempt(db: Conn, http: httpx.Client) -> None:
    task_id = make_task(db, make_project(db))
    claimed = claim(http, "w")
    assert post(http, "release-task", holder(claimed)).status_code == 200
    row = task(db, task_id)
    assert (row["status"], row["attempts"], row["worker_id"]) == ("Queued", 0, None)


def test_a_retried_claim_id_returns_the_same_task(db: Conn, http: httpx.Client) -> None:
    project = make_project(db)
    for _ in range(3):
        make_task(db, project)
    claim_id = str(uuid.uuid4())
    first = claim(http, "w", claim_id=claim_id)
    again = claim(http, "w", claim_id=claim_id)
    assert again["task_id"] == first["task_id"]
    assert again["attempt"] == first["attempt"] == 1
    other = claim(http, "w", claim_id=str(uuid.uuid4()))
    assert other["task_id"] != first["task_id"]
    assert db.execute("select count(*) as n from tasks where status = 'In Progress'").fetchone() == {"n": 2}


def test_the_claim_id_of_an_ended_claim_is_refused(db: Conn, http: httpx.Client) -> None:
    project = make_project(db)
    for _ in range(2):
        make_task(db, project)
    claim_id = str(uuid.uuid4())
    first = claim(http, "w", claim_id=claim_id)
    assert post(http, "complete-task", holder(first)).status_code == 200
    again = post(http, "claim-next-task", {"worker_id": "w", "claim_id": claim_id})
    assert again.status_code == 409
    assert "ended" in again.json()["error"]
    assert status_counts(db) == {"Complete": 1, "Queued": 1}


def test_a_retried_idempotency_key_returns_the_same_task(db: Conn, http: httpx.Client) -> None:
    body = {"project_id": str(make_project(db)), "task_type": "t", "idempotency_key": "order-42"}
    first = post(http, "create-task", body)
    again = post(http, "create-task", body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["task_id"] == again.json()["task_id"]
    assert db.execute("select count(*) as n from tasks").fetchone() == {"n": 1}


def test_a_user_token_acts_only_on_its_own_projects_and_tasks(db: Conn, http: httpx.Client) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alices_project, bobs_project = make_project(db, alice), make_project(db, bob)
    alice_token = Credentials.user_jwt(alice)
    refused = post(http, "create-task", {"project_id": str(bobs_project), "task_type": "t"}, alice_token)
    assert refused.status_code == 403
    own = post(http, "create-task", {"project_id": str(alices_project), "task_type": "t"}, alice_token)
    assert own.status_code == 201
    bobs_task = make_task(db, bobs_project)
    bobs_claim = claim(http, "bob-worker", Credentials.user_jwt(bob))
    assert bobs_claim["task_id"] == str(bobs_task)
    assert post(http, "complete-task", holder(bobs_claim), alice_token).status_code == 404
    assert task(db, bobs_task)["status"] == "In Progress"


def test_task_counts_are_scoped_like_the_claim(db: Conn, http: httpx.Client) -> None:
    alice = uuid.uuid4()
    for _ in range(2):
        make_task(db, make_project(db, alice), task_type="render")
    make_task(db, make_project(db), task_type="upscale")
    claim(http, "w", Credentials.user_jwt(alice))
    mine = post(http, "task-counts", {}, Credentials.user_jwt(alice)).json()
    assert mine["totals"] == {
        "queued": 1,
        "blocked": 0,
        "in_progress": 1,
        "complete": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert mine["scope"] == {"user_id": str(alice)}
    everyone = post(http, "task-counts", {}).json()
    assert {r["task_type"]: r["queued"] for r in everyone["by_task_type"]} == {"render": 1, "upscale": 1}
    assert everyone["scope"] == {"user_id": None}


@pytest.mark.parametrize(
    ("function", "body", "status"),
    [
        ("complete-task", {"worker_id": "w"}, 400),
        ("complete-task", {"task_id": "nope", "worker_id": "w"}, 400),
        ("complete-task", {"task_id": str(uuid.uuid4()), "worker_id": "w"}, 404),
        ("heartbeat", {"task_id": str(uuid.uuid4()), "worker_id": "w", "lease_seconds": -1}, 400),
        ("fail-task", {"task_id": str(uuid.uuid4()), "worker_id": "w", "retry": "yes"}, 400),
        ("create-task", {"project_id": str(uuid.uuid4()), "task_type": "t"}, 404),
        ("create-task", {"task_type": "t"}, 400),
        ("create-task", {"project_id": str(uuid.uuid4()), "task_type": "t", "params": [1]}, 400),
    ],
)
def test_life_cycle_calls_refuse_bad_input(
    db: Conn, http: httpx.Client, function: str, body: dict[str, Any], status: int
) -> None:
    response = post(http, function, body)
    assert response.status_code == status
    assert response.json()["error"]


def test_taskclaim_reap_recovers_expired_leases(empty_db_url: str) -> None:
    # A database of its own: the session's service reaps every 0.5 s and would race the CLI.
    migrations.migrate(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True, row_factory=dict_row) as conn:
        task_id = make_task(conn, make_project(conn))
        conn.execute(
            "update tasks set status = 'In Progress', worker_id = 'gone', attempts = 1,"
            " lease_expires_at = now() - interval '1 minute' where id = %s",
            (task_id,),
        )
        result = subprocess.run(
            [sys.executable, "-m", "taskclaim", "reap"],
            env={**os.environ, "DATABASE_URL": empty_db_url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert f"{task_id} Queued after attempt 1" in result.stdout
        assert task(conn, task_id)["status"] == "Queued"
