"""Fairness between users, on both runtimes. TASKCLAIM_CLAIM_ORDER=round-robin: service claims take users in
turn, so one user's backlog does not hold the workers while another user's few tasks wait (users' own
claims, and claims by task type, keep the plan's oldest-first order). TASKCLAIM_MAX_IN_PROGRESS_PER_USER: no
user holds more tasks in progress than the cap, however many claim at once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import RUNTIMES, SERVICE_KEY, Credentials, service_env
from tests.acceptance.test_lifecycle import holder, post
from tests.edge import EdgeProcess
from tests.helpers import Conn, make_project, make_tasks, status_counts
from tests.processes import ServiceProcess, TaskclaimProcess, free_port

Fair = ServiceProcess | EdgeProcess


def start(request: pytest.FixtureRequest, db_url: str, jwks_url: str, directory: Path, **env: str) -> Fair:
    env = {**service_env(db_url, jwks_url, directory), **env}
    process: Fair
    if request.param == "python":
        process = ServiceProcess(env, directory / "serve.log").start()
    else:
        process = EdgeProcess({**env, "SUPABASE_DB_URL": db_url}, directory / "edge.log", free_port()).start()
    return process


@pytest.fixture(scope="module", params=RUNTIMES)
def fair(
    request: pytest.FixtureRequest, db_url: str, jwks_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fair]:
    directory = tmp_path_factory.mktemp("round-robin")
    process = start(request, db_url, jwks_url, directory, TASKCLAIM_CLAIM_ORDER="round-robin")
    yield process
    process.stop()


@pytest.fixture(scope="module", params=RUNTIMES)
def capped(
    request: pytest.FixtureRequest, db_url: str, jwks_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fair]:
    """A cap of 2 tasks in progress per user, with the default (oldest-first) claim order."""
    directory = tmp_path_factory.mktemp("capped")
    process = start(request, db_url, jwks_url, directory, TASKCLAIM_MAX_IN_PROGRESS_PER_USER="2")
    yield process
    process.stop()


def owners(db: Conn, task_ids: list[str]) -> list[uuid.UUID]:
    rows = db.execute("select id, user_id from tasks where id = any(%s)", (task_ids,)).fetchall()
    by_id = {str(row["id"]): row["user_id"] for row in rows}
    return [by_id[t] for t in task_ids]


def test_a_small_users_tasks_are_not_stuck_behind_a_big_backlog(db: Conn, fair: Fair) -> None:
    """A has 300 older tasks, B 10 newer ones: oldest-first would hand out all of A's first. Round-robin
    alternates, so B's ten are claimed within the first twenty claims, one request at a time."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    make_tasks(db, make_project(db, alice), 300)
    make_tasks(db, make_project(db, bob), 10)
    claimed: list[str] = []
    with httpx.Client(base_url=fair.url, timeout=30) as http:
        for n in range(20):
            response = post(http, "claim-next-task", {"worker_id": f"w{n}"})
            assert response.status_code == 200, response.text
            claimed.append(response.json()["task_id"])
    assert owners(db, claimed).count(bob) == 10


def test_a_batch_claim_takes_users_in_turn(db: Conn, fair: Fair) -> None:
    users = [uuid.uuid4() for _ in range(3)]
    for user, count in zip(users, (50, 2, 5), strict=True):
        make_tasks(db, make_project(db, user), count)
    with httpx.Client(base_url=fair.url, timeout=30) as http:
        response = post(http, "claim-tasks", {"worker_id": "w", "max_tasks": 12})
    assert response.status_code == 200, response.text
    tasks = response.json()["tasks"]
    assert len(tasks) == 12 and set(tasks[0]) == {
        "task_id",
        "params",
        "task_type",
        "project_id",
        "worker_id",
        "attempt",
        "lease_expires_at",
    }
    got = owners(db, [t["task_id"] for t in tasks])
    assert [got.count(user) for user in users] == [5, 2, 5]  # the small users drained, the big one waits


def test_sixteen_concurrent_claimers_lose_nothing_and_share_nothing(db: Conn, fair: Fair) -> None:
    users = [uuid.uuid4() for _ in range(4)]
    for user in users:
        make_tasks(db, make_project(db, user), 50)
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        with httpx.Client(base_url=fair.url, timeout=30) as http:
            while (response := post(http, "claim-next-task", {"worker_id": f"c{n}"})).status_code == 200:
                with lock:
                    claimed.append(response.json()["task_id"])
            assert response.status_code == 204, response.text

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(claimed) == len(set(claimed)) == 200


def test_a_users_own_claims_keep_oldest_first(db: Conn, fair: Fair) -> None:
    user = uuid.uuid4()
    ids = make_tasks(db, make_project(db, user), 3)
    with httpx.Client(base_url=fair.url, timeout=30) as http:
        got = [post(http, "claim-next-task", {}, Credentials.user_jwt(user)).json()["task_id"] for _ in ids]
    assert got == [str(i) for i in ids]


def test_an_unknown_claim_order_is_refused_at_start(db_url: str, jwks_url: str, tmp_path: Path) -> None:
    env = {**service_env(db_url, jwks_url, tmp_path), "TASKCLAIM_CLAIM_ORDER": "fairest"}
    process = TaskclaimProcess(["serve", "--port", str(free_port())], env, tmp_path / "serve.log").start()
    assert process.wait() == 1
    assert process.log().strip() == (
        "taskclaim: error: TASKCLAIM_CLAIM_ORDER must be one of oldest, round-robin, not 'fairest'"
    )


def claim_status(http: httpx.Client, token: str = SERVICE_KEY, **body: Any) -> tuple[int, dict[str, Any]]:
    response = post(http, "claim-next-task", body, token)
    return response.status_code, (response.json() if response.status_code == 200 else {})


def test_a_user_at_the_cap_gets_204_until_a_task_of_theirs_ends(db: Conn, capped: Fair) -> None:
    user = uuid.uuid4()
    make_tasks(db, make_project(db, user), 5)
    token = Credentials.user_jwt(user)
    with httpx.Client(base_url=capped.url, timeout=30) as http:
        first, second = claim_status(http, token)[1], claim_status(http, token)[1]
        assert claim_status(http, token)[0] == 204  # two in progress: the cap
        assert post(http, "claim-tasks", {"max_tasks": 5}, token).status_code == 204
        assert post(http, "complete-task", holder(first), token).status_code == 200
        status, third = claim_status(http, token)
        assert status == 200 and third["task_id"] not in (first["task_id"], second["task_id"])
        assert claim_status(http, token)[0] == 204
    assert status_counts(db) == {"Complete": 1, "In Progress": 2, "Queued": 2}


def test_a_claim_id_retry_at_the_cap_still_gets_its_task(db: Conn, capped: Fair) -> None:
    user = uuid.uuid4()
    make_tasks(db, make_project(db, user), 3)
    token = Credentials.user_jwt(user)
    claim_id = str(uuid.uuid4())
    with httpx.Client(base_url=capped.url, timeout=30) as http:
        status, held = claim_status(http, token, claim_id=claim_id)
        assert status == 200 and claim_status(http, token)[0] == 200  # now at the cap
        again = claim_status(http, token, claim_id=claim_id)
        assert again == (200, held)
        assert claim_status(http, token, claim_id=str(uuid.uuid4()))[0] == 204


def test_service_claims_skip_users_at_the_cap(db: Conn, capped: Fair) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    make_tasks(db, make_project(db, alice), 10)
    make_tasks(db, make_project(db, bob), 10)
    with httpx.Client(base_url=capped.url, timeout=30) as http:
        held = [claim_status(http)[1] for _ in range(4)]
        assert all(held) and claim_status(http)[0] == 204  # both users at 2
        assert post(http, "claim-tasks", {"max_tasks": 10}).status_code == 204
        alices = [t for t in held if owners(db, [t["task_id"]]) == [alice]]
        assert len(alices) == 2
        assert post(http, "complete-task", holder(alices[0])).status_code == 200
        status, next_one = claim_status(http)
    assert status == 200 and owners(db, [next_one["task_id"]]) == [alice]


def test_concurrent_claims_of_one_user_never_pass_the_cap(db: Conn, capped: Fair) -> None:
    user = uuid.uuid4()
    make_tasks(db, make_project(db, user), 50)
    token = Credentials.user_jwt(user)
    statuses: list[int] = []
    lock = threading.Lock()

    def claimer() -> None:
        with httpx.Client(base_url=capped.url, timeout=30) as http:
            for _ in range(5):
                status = post(http, "claim-tasks", {"max_tasks": 3}, token).status_code
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=claimer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert set(statuses) <= {200, 204} and statuses.count(200) >= 1
    assert status_counts(db) == {"In Progress": 2, "Queued": 48}


def test_an_unusable_cap_is_refused_at_start(db_url: str, jwks_url: str, tmp_path: Path) -> None:
    env = {**service_env(db_url, jwks_url, tmp_path), "TASKCLAIM_MAX_IN_PROGRESS_PER_USER": "0"}
    process = TaskclaimProcess(["serve", "--port", str(free_port())], env, tmp_path / "serve.log").start()
    assert process.wait() == 1
    assert "TASKCLAIM_MAX_IN_PROGRESS_PER_USER must be a whole number from 1" in process.log()


def test_a_long_poll_at_the_cap_claims_as_soon_as_room_is_made(db: Conn, capped: Fair) -> None:
    """At the cap a claim finds nothing though tasks are ready, and the completion that makes room sends no
    notification: such a scope must not be taken for known empty (taskclaim.longpoll)."""
    user = uuid.uuid4()
    make_tasks(db, make_project(db, user), 3)
    token = Credentials.user_jwt(user)
    with httpx.Client(base_url=capped.url, timeout=30) as http:
        first, _ = claim_status(http, token)[1], claim_status(http, token)[1]
        assert claim_status(http, token, wait_seconds=0.5)[0] == 204
        assert post(http, "complete-task", holder(first), token).status_code == 200
        assert claim_status(http, token, wait_seconds=0.5)[0] == 200
