"""Reliability under failure: killed database backends, several replicas, a replica SIGKILLed mid-run.

The invariants are the queue's: no task is handed to two holders, none is lost. A claim whose answer was
lost to a failure leaves its task In Progress under a lease, from which recovery returns it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from taskclaim.client import NotHeld, TaskClient
from tests.acceptance.conftest import SERVICE_KEY, bearer, service_env
from tests.helpers import Conn, make_project, make_tasks, status_counts, wait_until
from tests.processes import ServiceProcess

CLAIM = "/functions/v1/claim-next-task"


@pytest.mark.slow
def test_killed_backends_lose_no_task_and_give_none_twice(
    db: Conn, db_url: str, service: ServiceProcess
) -> None:
    claims_survive_killed_backends(db, db_url, service.url)


def claims_survive_killed_backends(db: Conn, db_url: str, base_url: str) -> None:
    """8 clients claim 1,000 tasks while the service's pool connections (``application_name`` taskclaim;
    behind PgBouncer, PgBouncer's to PostgreSQL, which it names after its client) are killed every 50 ms:
    only 200, 204 and 503, nobody gets a task twice, none is lost, and the tasks whose answer was lost
    come back when their lease ends."""
    make_tasks(db, make_project(db), 1000)
    returned: list[str] = []
    statuses: list[int] = []
    lock = threading.Lock()
    done = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            while True:
                response = http.post(CLAIM, headers=bearer(SERVICE_KEY))
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 200:
                        returned.append(response.json()["task_id"])
                if response.status_code == 204:
                    return

    def killer() -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            while not done.is_set():
                conn.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity"
                    " where application_name = 'taskclaim' and pid <> pg_backend_pid()"
                )
                time.sleep(0.05)

    chaos = threading.Thread(target=killer)
    chaos.start()
    clients = [threading.Thread(target=client) for _ in range(8)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(120)
    done.set()
    chaos.join()

    assert set(statuses) <= {200, 204, 503}, set(statuses)
    assert 503 in statuses  # the chaos really hit requests
    assert len(returned) == len(set(returned))  # nobody got a task twice
    in_progress = {str(r["id"]) for r in db.execute("select id from tasks where status = 'In Progress'")}
    assert set(returned) <= in_progress
    assert status_counts(db).get("Queued", 0) + len(in_progress) == 1000  # none lost
    # Tasks whose answer was lost are recovered when their lease ends.
    db.execute("update tasks set lease_expires_at = now() - interval '1 second' where status = 'In Progress'")
    db.execute("select count(*) from taskclaim_reap(100000)")  # the service's reaper may take some first
    deadline = time.monotonic() + 10
    while status_counts(db) != {"Queued": 1000}:
        assert time.monotonic() < deadline, status_counts(db)
        time.sleep(0.1)


@pytest.mark.slow
def test_two_replicas_and_a_sigkilled_one_lose_nothing(
    db: Conn, db_url: str, jwks_url: str, tmp_path: Path
) -> None:
    env = {**service_env(db_url, jwks_url, tmp_path), "TASKCLAIM_REAP_INTERVAL": "0.3"}
    replicas_survive_a_sigkill(db, env, db_url, tmp_path)


def replicas_survive_a_sigkill(db: Conn, env: dict[str, str], fallback_url: str, tmp_path: Path) -> None:
    """Two replicas with ``env`` and 8 workers (falling back to ``fallback_url``) complete 600 one-second
    leases' tasks while one replica is SIGKILLed mid-run: every task complete once, by its holder."""
    make_tasks(db, make_project(db), 600)
    replicas = [ServiceProcess(env, tmp_path / f"replica{i}.log").start() for i in range(2)]
    completed: list[str] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        url = replicas[index % 2].url + CLAIM
        with TaskClient(
            url, SERVICE_KEY, database_url=fallback_url, retries=1, backoff=0.01, timeout=5
        ) as client:
            idle_since = None
            while True:
                task = client.claim(lease_seconds=1)
                if task is None:  # the queue may refill as the dead replica's leases expire
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 3:
                        return
                    time.sleep(0.1)
                    continue
                idle_since = None
                try:
                    client.complete(task, result={"by": index})
                except NotHeld:  # slower than its 1-second lease: recovered and taken by another
                    continue
                with lock:
                    completed.append(task.task_id)

    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(completed) >= 50, "the workers to be under way")
        replicas[0].signal(9)  # SIGKILL mid-run: its clients fall back to the RPC, its claims recover
        for thread in threads:
            thread.join(120)
    finally:
        for replica in replicas:
            replica.stop()
    assert status_counts(db) == {"Complete": 600}
    assert len(completed) == len(set(completed)) == 600  # each completed once, by its holder
