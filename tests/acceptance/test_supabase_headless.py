"""The worker client's paths (the plan's §4 and §6): the service first, the direct RPC when it is down.

Every failure mode is produced with real parts: a closed port, a real ``taskclaim serve`` whose database
function raises (so it answers 500), and a real server stopped with SIGSTOP (the kernel still accepts
the connection, nothing answers).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from taskclaim import client as client_module
from taskclaim.client import ServiceUnavailable, TaskClient, get_oldest_queued_task_supabase
from tests.acceptance.conftest import SERVICE_KEY, service_env
from tests.helpers import (
    Conn,
    make_project,
    make_task,
    make_tasks,
    status_counts,
    task,
)
from tests.processes import ServiceProcess, free_port

CLAIM_PATH = "/functions/v1/claim-next-task"


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}{CLAIM_PATH}"


@pytest.fixture
def claim_url(service: ServiceProcess) -> str:
    return service.url + CLAIM_PATH


@pytest.mark.edge
def test_service_up_serves_from_the_edge(db: Conn, db_url: str, claim_url: str) -> None:
    task_id = make_task(db, make_project(db))
    with TaskClient(claim_url, SERVICE_KEY, database_url=db_url) as client:
        claimed = client.claim()
        assert claimed is not None and claimed.task_id == str(task_id)
        assert client.last_path == "edge"
        assert client.stats["edge"] == 1 and client.stats["rpc"] == 0


@pytest.mark.edge
def test_closed_port_falls_back_to_the_rpc(db: Conn, db_url: str) -> None:
    task_id = make_task(db, make_project(db))
    with TaskClient(closed_port_url(), SERVICE_KEY, database_url=db_url, backoff=0.01) as client:
        claimed = client.claim(worker_id="rpc-worker")
        assert claimed is not None and claimed.task_id == str(task_id)
        assert client.last_path == "rpc"
        assert client.stats["rpc"] == 1
    row = task(db, task_id)
    assert (row["status"], row["worker_id"]) == ("In Progress", "rpc-worker")


@pytest.mark.edge
def test_a_500_from_the_service_falls_back_to_the_rpc(broken_db_url: str, broken_service: str) -> None:
    with psycopg.connect(broken_db_url, autocommit=True, row_factory=dict_row) as conn:
        task_id = make_task(conn, make_project(conn))
    with TaskClient(broken_service, SERVICE_KEY, database_url=broken_db_url) as client:
        claimed = client.claim()
        assert claimed is not None and claimed.task_id == str(task_id)
        assert client.last_path == "rpc"
        assert client.stats["fallback_reason:service answered 500"] == 1


@pytest.mark.edge
@pytest.mark.slow
def test_a_service_that_never_answers_falls_back_after_the_timeout(
    db: Conn, db_url: str, jwks_url: str, tmp_path: Path
) -> None:
    task_id = make_task(db, make_project(db))
    hung = ServiceProcess(service_env(db_url, jwks_url, tmp_path), tmp_path / "serve.log").start()
    hung.signal(signal.SIGSTOP)  # the kernel still accepts connections; nothing answers
    try:
        with TaskClient(hung.url + CLAIM_PATH, SERVICE_KEY, database_url=db_url, timeout=1.0) as client:
            claimed = client.claim()
            assert claimed is not None and claimed.task_id == str(task_id)
            assert client.last_path == "rpc"
            assert client.stats["fallback_reason:no answer from the service"] == 1
    finally:
        hung.signal(signal.SIGCONT)
        hung.stop()


@pytest.mark.edge
def test_204_is_none_and_no_rpc_call(db: Conn, db_url: str, claim_url: str) -> None:
    with TaskClient(claim_url, SERVICE_KEY, database_url=db_url) as client:
        assert client.claim() is None
        assert client.stats["edge"] == 1 and client.stats["rpc"] == 0


def test_no_fallback_configured_raises_a_clear_error(db: Conn) -> None:
    with TaskClient(closed_port_url(), SERVICE_KEY, backoff=0.01) as client:
        client.database_url = None
        with pytest.raises(ServiceUnavailable, match="no fallback is configured"):
            client.claim()


@pytest.mark.edge
def test_the_drop_in_reads_module_settings_and_the_environment(
    db: Conn, db_url: str, claim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = make_task(db, make_project(db), task_type="render", params={"a": 1})
    monkeypatch.setenv("SUPABASE_ACCESS_TOKEN", SERVICE_KEY)
    monkeypatch.setenv("SUPABASE_EDGE_CLAIM_TASK_URL", claim_url)
    monkeypatch.setenv("DATABASE_URL", db_url)
    got = get_oldest_queued_task_supabase()
    assert got is not None
    assert {k: got[k] for k in ("task_id", "params", "task_type")} == {
        "task_id": str(task_id),
        "params": {"a": 1},
        "task_type": "render",
    }
    assert get_oldest_queued_task_supabase() is None
    monkeypatch.setattr(client_module, "SUPABASE_EDGE_CLAIM_TASK_URL", closed_port_url())
    second = make_task(db, make_project(db))
    got = get_oldest_queued_task_supabase()  # the module setting wins; its port is closed: RPC
    assert got is not None and got["task_id"] == str(second)


@pytest.mark.edge
def test_a_supabase_client_is_used_for_the_fallback_and_out_columns_are_mapped(db: Conn) -> None:
    task_id = make_task(db, make_project(db))

    class PostgrestRpc:
        """The shape of supabase-py's ``client.rpc(name, params).execute().data``, answered by the real
        function through SQL (supabase-py and PostgREST are third-party services not run here)."""

        def __init__(self, conn: Conn) -> None:
            self.conn = conn
            self.calls: list[tuple[str, dict[str, object]]] = []

        def rpc(self, name: str, params: dict[str, object]) -> PostgrestRpc:
            self.calls.append((name, params))
            assert name == "func_claim_task"
            rows = self.conn.execute(
                "select task_id as task_id_out, params as params_out, task_type as task_type_out,"
                " project_id as project_id_out, worker_id as worker_id_out, attempt as attempt_out"
                " from public.func_claim_task(%(p_table_name)s, %(p_worker_id)s)",
                params,
            ).fetchall()
            self.data = [dict(r) for r in rows]
            return self

        def execute(self) -> PostgrestRpc:
            return self

    supabase = PostgrestRpc(db)
    with TaskClient(closed_port_url(), SERVICE_KEY, supabase_client=supabase, backoff=0.01) as client:
        client.database_url = None
        claimed = client.claim(worker_id="sb")
    assert claimed is not None and claimed.task_id == str(task_id)
    assert supabase.calls == [("func_claim_task", {"p_table_name": "tasks", "p_worker_id": "sb"})]


@pytest.mark.edge
@pytest.mark.slow
def test_four_edge_and_four_rpc_workers_claim_two_thousand_tasks_exactly_once(
    db: Conn, db_url: str, claim_url: str
) -> None:
    make_tasks(db, make_project(db), 2000)
    claimed: list[str] = []
    paths: list[str] = []
    lock = threading.Lock()

    def worker(url: str) -> None:
        with TaskClient(url, SERVICE_KEY, database_url=db_url, backoff=0.01, retries=0) as client:
            while (got := client.claim()) is not None:
                with lock:
                    claimed.append(got.task_id)
                    paths.append(client.last_path or "")

    urls = [claim_url] * 4 + [closed_port_url() for _ in range(4)]
    threads = [threading.Thread(target=worker, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(claimed) == 2000
    assert len(set(claimed)) == 2000
    assert status_counts(db) == {"In Progress": 2000}
    assert paths.count("edge") > 0 and paths.count("rpc") > 0


def test_the_full_cycle_works_on_the_rpc_path(db: Conn, db_url: str) -> None:
    project = make_project(db)
    with TaskClient(closed_port_url(), SERVICE_KEY, database_url=db_url, backoff=0.01, retries=0) as client:
        created = client.create(str(project), "render", {"x": 1}, idempotency_key="k1")
        assert (
            client.create(str(project), "render", {"x": 1}, idempotency_key="k1")["task_id"]
            == created["task_id"]
        )
        claimed = client.claim(lease_seconds=30)
        assert claimed is not None and str(claimed.task_id) == str(created["task_id"])
        client.heartbeat(claimed, 60)
        client.complete(claimed, result={"ok": 1})
        assert client.counts()["totals"]["complete"] == 1
        assert client.stats["edge"] == 0
    assert task(db, claimed.task_id)["result"] == {"ok": 1}
