"""The service and the client's fallback through a real PgBouncer in transaction mode (as Supavisor's port
6543 on Supabase): server-side prepared statements off for the pooled connections, LISTEN and migrations on
the direct URL. Deselected, with a summary line, where PgBouncer is not installed (tests/conftest.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg.conninfo import conninfo_to_dict

from taskclaim.client import TaskClient
from tests.acceptance.conftest import SERVICE_KEY, bearer, service_env
from tests.acceptance.test_chaos import claims_survive_killed_backends, replicas_survive_a_sigkill
from tests.helpers import (
    Conn,
    long_polls_waiting,
    make_project,
    make_task,
    make_tasks,
    metric,
    status_counts,
    wait_until,
)
from tests.pgbouncer import PgBouncer
from tests.processes import ServiceProcess

pytestmark = pytest.mark.pgbouncer
CLAIM = "/functions/v1/claim-next-task"


@pytest.fixture(scope="module")
def bouncer(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgBouncer]:
    running = PgBouncer(tmp_path_factory.mktemp("pgbouncer"), db_url).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def pooled_url(bouncer: PgBouncer, db_url: str) -> str:
    return bouncer.url(str(conninfo_to_dict(db_url)["dbname"]))


@pytest.fixture(scope="module")
def pooled(
    pooled_url: str, db_url: str, jwks_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    directory = tmp_path_factory.mktemp("pooled")
    env = {
        **service_env(pooled_url, jwks_url, directory),
        "TASKCLAIM_POOLER": "transaction",
        "TASKCLAIM_DIRECT_URL": db_url,
        "TASKCLAIM_REAP_INTERVAL": "0",
    }
    process = ServiceProcess(env, directory / "serve.log").start()
    yield process
    process.stop()


def drain(base: str, worker: str, outcomes: list[int]) -> None:
    with httpx.Client(base_url=base, headers=bearer(SERVICE_KEY), timeout=30) as http:
        while True:
            claim = http.post(CLAIM, json={"worker_id": worker})
            outcomes.append(claim.status_code)
            if claim.status_code != 200:
                return
            held: dict[str, Any] = claim.json()
            body = {k: held[k] for k in ("task_id", "worker_id", "attempt")}
            outcomes.append(http.post("/functions/v1/complete-task", json=body).status_code)


def test_eight_clients_claim_and_complete_through_pgbouncer_and_lose_nothing(
    db: Conn, pooled: ServiceProcess
) -> None:
    make_tasks(db, make_project(db), 400)
    outcomes: list[int] = []
    threads = [threading.Thread(target=drain, args=(pooled.url, f"w{i}", outcomes)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert set(outcomes) <= {200, 204}, sorted(set(outcomes))
    assert status_counts(db) == {"Complete": 400}
    assert outcomes.count(200) == 800 and outcomes.count(204) == 8


def test_a_long_poll_is_woken_by_its_notification_through_the_direct_url(
    db: Conn, pooled: ServiceProcess
) -> None:
    assert metric(pooled.url, "taskclaim_listening") == 1
    # the probe goes out through PgBouncer, as the triggers' notifications do, and comes back on LISTEN
    wait_until(lambda: metric(pooled.url, "taskclaim_notifications_arriving") == 1, "the probe")
    project = make_project(db)
    answer: dict[str, Any] = {}

    def wait() -> None:
        started = time.monotonic()
        response = httpx.post(
            pooled.url + CLAIM, headers=bearer(SERVICE_KEY), json={"wait_seconds": 30}, timeout=60
        )
        answer.update(status=response.status_code, seconds=time.monotonic() - started)

    thread = threading.Thread(target=wait)
    thread.start()
    long_polls_waiting(pooled.url)
    created = time.monotonic()
    make_task(db, project)
    thread.join(60)
    assert answer["status"] == 200
    # Woken by NOTIFY, not by the 5 s retry every waiter also makes (which would work without LISTEN).
    assert time.monotonic() - created < 4.0, answer


def test_the_fallback_through_pgbouncer_prepares_nothing(
    db: Conn, pooled_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKCLAIM_POOLER", "transaction")
    make_tasks(db, make_project(db), 200)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with TaskClient("", SERVICE_KEY, database_url=pooled_url) as client:
                while tasks := client.claim_many(5, worker_id="fallback"):
                    client.complete_many([(task, None) for task in tasks])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert status_counts(db) == {"Complete": 200}


def test_without_a_direct_url_there_is_no_listen_and_health_says_so(
    db: Conn, pooled_url: str, jwks_url: str, tmp_path: Path
) -> None:
    env = {**service_env(pooled_url, jwks_url, tmp_path), "TASKCLAIM_POOLER": "transaction"}
    process = ServiceProcess(env, tmp_path / "serve.log").start()
    try:
        assert httpx.get(process.url + "/health").json() == {"status": "ok", "notifications": "off"}
        assert metric(process.url, "taskclaim_listening") == 0
        assert metric(process.url, "taskclaim_notifications_arriving") == 0
        assert "no LISTEN" in process.log()
        make_task(db, make_project(db))
        answer = httpx.post(process.url + CLAIM, headers=bearer(SERVICE_KEY), json={"wait_seconds": 1})
        assert answer.status_code == 200  # claims work; only the wake-up is left to the retry
    finally:
        process.stop()


@pytest.mark.slow
def test_killed_server_connections_behind_pgbouncer_lose_no_task_and_give_none_twice(
    db: Conn, db_url: str, pooled: ServiceProcess
) -> None:
    """The chaos case of test_chaos through the pooler: PgBouncer's connections to PostgreSQL are killed
    under the service's claims (the LISTEN connection, direct and named taskclaim-listen, is spared)."""
    claims_survive_killed_backends(db, db_url, pooled.url)


@pytest.mark.slow
def test_two_replicas_through_pgbouncer_and_a_sigkilled_one_lose_nothing(
    db: Conn, db_url: str, pooled_url: str, jwks_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_chaos's replica case with the replicas and the workers' fallback both through PgBouncer."""
    monkeypatch.setenv("TASKCLAIM_POOLER", "transaction")  # the workers' fallback prepares nothing either
    env = {
        **service_env(pooled_url, jwks_url, tmp_path),
        "TASKCLAIM_POOLER": "transaction",
        "TASKCLAIM_DIRECT_URL": db_url,
        "TASKCLAIM_REAP_INTERVAL": "0.3",
    }
    replicas_survive_a_sigkill(db, env, pooled_url, tmp_path)
