"""TASKCLAIM_CLAIM_ORDER=round-robin, on both runtimes: service claims take users in turn, so one user's
backlog does not hold the workers while another user's few tasks wait. Users' own claims, and claims by
task type, keep the plan's oldest-first order."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import RUNTIMES, Credentials, service_env
from tests.acceptance.test_lifecycle import post
from tests.edge import EdgeProcess
from tests.helpers import Conn, make_project, make_tasks
from tests.processes import ServiceProcess, TaskclaimProcess, free_port

Fair = ServiceProcess | EdgeProcess


@pytest.fixture(scope="module", params=RUNTIMES)
def fair(
    request: pytest.FixtureRequest, db_url: str, jwks_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fair]:
    directory = tmp_path_factory.mktemp("round-robin")
    env = {**service_env(db_url, jwks_url, directory), "TASKCLAIM_CLAIM_ORDER": "round-robin"}
    process: Fair
    if request.param == "python":
        process = ServiceProcess(env, directory / "serve.log").start()
    else:
        process = EdgeProcess({**env, "SUPABASE_DB_URL": db_url}, directory / "edge.log", free_port()).start()
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
