"""The service around its database: an outage under a running server, and the embedded quick start."""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from taskclaim import migrations
from taskclaim.client import TaskClient
from taskclaim.embedded import EmbeddedPostgres
from tests.acceptance.conftest import SERVICE_KEY, bearer
from tests.conftest import FAST_SETTINGS
from tests.helpers import Conn, long_polls_waiting, make_project, make_tasks
from tests.processes import ServiceProcess

CLAIM = "/functions/v1/claim-next-task"


@pytest.mark.slow
def test_database_outage_gives_503_and_the_server_recovers_without_restart(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg", settings=FAST_SETTINGS)
    url = pg.start()
    service: ServiceProcess | None = None
    try:
        migrations.migrate(url)
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            make_tasks(conn, make_project(conn), 20)
        env = {
            "DATABASE_URL": url,
            "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY,
            "TASKCLAIM_DATA_DIR": str(tmp_path / "data"),
            "TASKCLAIM_POOL_TIMEOUT": "2",
        }
        service = ServiceProcess(env, tmp_path / "serve.log").start()
        claimed: list[str] = []
        with httpx.Client(base_url=service.url, timeout=30, headers=bearer(SERVICE_KEY)) as http:
            for _ in range(5):
                response = http.post(CLAIM)
                assert response.status_code == 200
                claimed.append(response.json()["task_id"])

            pg.stop_server()
            for _ in range(3):
                response = http.post(CLAIM)
                assert response.status_code == 503
                assert response.json()["error"]
                assert int(response.headers["retry-after"]) > 0
            assert http.get("/health").status_code == 503

            pg.start_server()
            deadline = time.monotonic() + 30
            while True:
                response = http.post(CLAIM)
                if response.status_code == 200:
                    claimed.append(response.json()["task_id"])
                    break
                assert response.status_code == 503, response.text
                assert time.monotonic() < deadline, "the server did not recover"
                time.sleep(0.2)
            while (response := http.post(CLAIM)).status_code == 200:
                claimed.append(response.json()["task_id"])
            assert response.status_code == 204
        assert len(claimed) == 20
        assert len(set(claimed)) == 20
        with psycopg.connect(url) as conn:
            rows = conn.execute("select status::text, count(*) from public.tasks group by 1").fetchall()
        assert rows == [("In Progress", 20)]
    finally:
        if service is not None:
            service.stop()
        pg.release()


@pytest.mark.slow
def test_quick_start_serves_on_embedded_postgres_with_a_generated_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    fresh = {"TASKCLAIM_DATA_DIR": str(data_dir), "DATABASE_URL": "", "SUPABASE_SERVICE_ROLE_KEY": ""}
    service = ServiceProcess(fresh, tmp_path / "log")
    service.start()
    try:
        match = re.search(r"try: curl -i -X POST (\S+) -H 'Authorization: Bearer (\S+)'", service.log())
        assert match, service.log()
        assert (data_dir / "service_key").read_text().strip() == match.group(2)
        assert (data_dir / "service_key").stat().st_mode & 0o077 == 0
        response = httpx.post(match.group(1), headers=bearer(match.group(2)), timeout=10)
        assert response.status_code == 204  # an empty queue, and the key was accepted
        assert httpx.post(match.group(1), headers=bearer("wrong"), timeout=10).status_code == 403
        assert EmbeddedPostgres(data_dir).is_running()
        assert f"dashboard: {service.url}/#token={match.group(2)}" in service.log()
    finally:
        service.signal(signal.SIGTERM)
        assert service.wait(30) == 0, service.log()
    assert not EmbeddedPostgres(data_dir).is_running()  # the last user stopped it cleanly

    again = ServiceProcess(fresh, tmp_path / "log2")
    again.start()  # the same data directory is reused: same key, same database
    try:
        assert "applied migration" not in again.log()
        assert match.group(2) in again.log()
    finally:
        assert again.stop() == 0


def test_a_client_says_once_when_it_falls_back_and_once_when_the_service_is_back(
    db: Conn, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_tasks(db, make_project(db), 5)
    env = {
        "DATABASE_URL": db_url,
        "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY,
        "TASKCLAIM_DATA_DIR": str(tmp_path),
    }
    service = ServiceProcess(env, tmp_path / "serve.log").start()
    caplog.set_level(logging.INFO, logger="taskclaim.client")
    with TaskClient(service.url + CLAIM, SERVICE_KEY, database_url=db_url, retries=0) as client:
        assert client.claim(worker_id="w") is not None and client.last_path == "edge"
        service.stop()
        for _ in range(2):
            assert client.claim(worker_id="w") is not None and client.last_path == "rpc"
        again = ServiceProcess(env, tmp_path / "serve.log", port=service.port).start()
        try:
            assert client.claim(worker_id="w") is not None and client.last_path == "edge"
        finally:
            again.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "using the direct RPC until it is back" in warnings[0]
    assert "the service is back" in warnings[1]
    assert sum("served by the direct RPC" in r.getMessage() for r in caplog.records) == 1


def test_sigterm_ends_waiting_long_polls_at_once_with_204(db: Conn, db_url: str, tmp_path: Path) -> None:
    """A deploy restarts the service: its idle workers' long polls must end as "nothing for you" (204) and
    come back, not wait out the graceful-shutdown timeout and get 500s (which would send clients to the
    fallback)."""
    env = {
        "DATABASE_URL": db_url,
        "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY,
        "TASKCLAIM_DATA_DIR": str(tmp_path),
    }
    service = ServiceProcess(env, tmp_path / "serve.log").start()
    answers: list[tuple[int, float]] = []

    def wait() -> None:
        started = time.monotonic()
        response = httpx.post(
            service.url + CLAIM, json={"wait_seconds": 30}, headers=bearer(SERVICE_KEY), timeout=60
        )
        answers.append((response.status_code, time.monotonic() - started))

    threads = [threading.Thread(target=wait) for _ in range(3)]
    for thread in threads:
        thread.start()
    long_polls_waiting(service.url, 3)
    stopped = time.monotonic()
    service.signal(signal.SIGTERM)
    for thread in threads:
        thread.join(60)
    assert [status for status, _ in answers] == [204, 204, 204], service.log()
    assert service.wait(30) == 0
    assert time.monotonic() - stopped < 5, "the long polls waited for the shutdown timeout"
