"""``taskclaim serve --workers N``: N processes on one port, each with its own pool and coalescers; a
process that dies is replaced; /metrics adds up every process; SIGTERM stops them all."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import SERVICE_KEY, bearer, service_env
from tests.helpers import Conn, make_project, make_tasks, status_counts, wait_until
from tests.processes import ServiceProcess

CLAIM = "/functions/v1/claim-next-task"


def children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def claim_requests(base: str) -> float:
    text = httpx.get(base + "/metrics").text
    found = re.search(
        r'^taskclaim_http_requests_total\{route="claim-next-task",status="200"\} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def two(db_url: str, jwks_url: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    env = {**service_env(db_url, jwks_url, tmp_path), "TASKCLAIM_REAP_INTERVAL": "0"}
    process = ServiceProcess(env, tmp_path / "serve.log", extra=["--workers", "2"]).start()
    yield process
    process.stop()


def test_two_processes_serve_one_port_and_metrics_add_up(db: Conn, two: ServiceProcess) -> None:
    ids = {str(i) for i in make_tasks(db, make_project(db), 40)}
    wait_until(lambda: len(children(two.pid)) == 2, "two server processes")
    claimed = []
    for _ in range(40):  # a new connection each time: the kernel hands them to either process
        answer = httpx.post(two.url + CLAIM, headers=bearer(SERVICE_KEY), json={"worker_id": "w"})
        assert answer.status_code == 200, answer.text
        claimed.append(answer.json()["task_id"])
    assert sorted(claimed) == sorted(ids)  # each task once
    assert len(set(re.findall(r"Started server process \[(\d+)\]", two.log()))) == 2
    # Whichever process answers a scrape counts every process's claims, the others' as of their last
    # second: six scrapes in a row agree once that second has passed.
    wait_until(
        lambda: all(claim_requests(two.url) == 40 for _ in range(6)), "every process's claims", timeout=10
    )


def test_a_process_that_dies_is_replaced_and_sigterm_stops_them_all(db: Conn, two: ServiceProcess) -> None:
    make_tasks(db, make_project(db), 20)
    wait_until(lambda: len(children(two.pid)) == 2, "two server processes")
    first = children(two.pid)
    os.kill(min(first), signal.SIGKILL)
    wait_until(lambda: len(children(two.pid)) == 2 and children(two.pid) != first, "a replacement", 20)
    wait_until(lambda: httpx.get(two.url + "/health").status_code == 200, "health")
    for _ in range(20):
        assert httpx.post(two.url + CLAIM, headers=bearer(SERVICE_KEY)).status_code == 200
    assert status_counts(db) == {"In Progress": 20}
    assert "starting another" in two.log()
    left = children(two.pid)
    assert two.stop() == 0, two.log()
    for pid in left:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
