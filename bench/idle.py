"""Idle fleet: what W long-polling workers of U users cost PostgreSQL and the service with nothing to do.

    python -m bench.idle [--workers 100] [--users 100] [--wait 5] [--seconds 60]

Each worker is a thread that long-polls ``claim-next-task`` with ``wait_seconds`` in a loop, as the reference
worker does when idle, with its user's personal access token. After a warm-up (15 s) (token caches filled, the
notification probe heard), it reports the transactions PostgreSQL committed per second in the bench database
(``pg_stat_database``, the measurement's own two reads subtracted) and the service's CPU, over ``--seconds``.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import threading
import time
import uuid
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row
from tests.helpers import personal_token

from bench.drain import cpu_seconds
from bench.steps import Bench, Sizes, new_workdir


def transactions(bench: Bench) -> int:
    with bench.connect() as conn:
        row = conn.execute(
            "select xact_commit + xact_rollback from pg_stat_database where datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def poll(base: str, token: str, wait: float, stop: threading.Event, errors: list[int]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=wait + 30) as http:
        while not stop.is_set():
            status = http.post("/functions/v1/claim-next-task", json={"wait_seconds": wait}).status_code
            if status != 204:
                errors.append(status)
                time.sleep(1)


def run(workers: int, users: int, wait: float, seconds: float, warmup: float = 15.0) -> dict[str, Any]:
    bench = Bench(Sizes(), new_workdir())
    bench.start()
    stop = threading.Event()
    errors: list[int] = []
    try:
        with psycopg.connect(bench.url, autocommit=True, row_factory=dict_row) as conn:
            tokens = []
            for _ in range(users):
                user = uuid.uuid4()
                conn.execute("insert into projects (user_id) values (%s)", (user,))
                tokens.append(personal_token(conn, user))
        with bench.service() as base:
            threads = [
                threading.Thread(target=poll, args=(base, tokens[i % users], wait, stop, errors), daemon=True)
                for i in range(workers)
            ]
            for thread in threads:
                thread.start()
            time.sleep(warmup)
            tx, cpu = transactions(bench), cpu_seconds(bench.service_pid)
            time.sleep(seconds)
            tx_after, cpu_after = transactions(bench), cpu_seconds(bench.service_pid)
            health = httpx.get(base + "/health").json()
            stop.set()
    finally:
        bench.stop()
    return {
        "workers": workers,
        "users": users,
        "wait_seconds": wait,
        "transactions_per_s": (tx_after - tx - 1) / seconds,  # less the second read's own transaction
        "service_cpu_percent": 100 * (cpu_after - cpu) / seconds,
        "notifications": health.get("notifications"),
        "errors": dict(collections.Counter(errors)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--wait", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    args = parser.parse_args()
    print(json.dumps(run(args.workers, args.users, args.wait, args.seconds, args.warmup)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
