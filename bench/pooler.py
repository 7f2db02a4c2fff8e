"""Through a transaction-mode pooler (issue 13): claims/s and long-poll wake-up, direct and through PgBouncer.

    python -m bench.pooler [--seconds 8] [--runs 2] [--tasks 200] [--waiters 8]

On one embedded PostgreSQL, Debian's PgBouncer (``TASKCLAIM_PGBOUNCER`` or on the PATH) in transaction mode in
front of it, and two ``taskclaim serve``: one on the direct URL, one through PgBouncer
(``TASKCLAIM_POOLER=transaction``, LISTEN on ``TASKCLAIM_DIRECT_URL``). For each, alternated ``--runs`` times:

- claims/s at 16 connections (wrk, or the Python load generator without it), the table refilled first;
- wake-up: ``--waiters`` threads long-poll ``claim-next-task`` on an empty queue; ``--tasks`` tasks are then
  created one at a time, 20 ms apart, and each one's latency runs from just before its INSERT was sent to the
  moment a waiter has the claimed task in hand (p50, p99, max).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import httpx
from tests.pgbouncer import PgBouncer

from bench.steps import KEY, Bench, Sizes, new_workdir


def wakeups(bench: Bench, base: str, tasks: int, waiters: int) -> dict[str, float]:
    bench.reset(0)
    received: dict[str, float] = {}
    stop = threading.Event()

    def wait_for_tasks() -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as http:
            while not stop.is_set():
                answer = http.post("/functions/v1/claim-next-task", json={"wait_seconds": 2})
                if answer.status_code == 200:
                    received[answer.json()["params"]["id"]] = time.perf_counter()

    threads = [threading.Thread(target=wait_for_tasks, daemon=True) for _ in range(waiters)]
    for thread in threads:
        thread.start()
    time.sleep(3)  # every waiter is waiting, and their scope is known empty
    sent: dict[str, float] = {}
    with bench.connect() as conn:
        for n in range(tasks):
            key = str(n)
            sent[key] = time.perf_counter()
            conn.execute(
                "insert into tasks (project_id, task_type, params)"
                " values (%s, 'bench', jsonb_build_object('id', %s::text))",
                (bench.project, key),
            )
            time.sleep(0.02)
    deadline = time.monotonic() + 10
    while len(received) < tasks and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(10)
    latencies = sorted(received[k] - sent[k] for k in sent if k in received)
    assert len(latencies) == tasks, f"{tasks - len(latencies)} task(s) never reached a waiter"

    def ms(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {"p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": 1000 * latencies[-1]}


def run(seconds: float, runs: int, tasks: int, waiters: int) -> list[dict[str, Any]]:
    bench = Bench(Sizes(seconds=seconds), new_workdir())
    bench.start()
    bouncer = PgBouncer(bench.workdir / "pgbouncer", bench.url).start()
    rows: list[dict[str, Any]] = []
    try:
        pooled_env = {
            "DATABASE_URL": bouncer.url("bench"),
            "TASKCLAIM_POOLER": "transaction",
            "TASKCLAIM_DIRECT_URL": bench.url,
        }
        with bench.service() as direct, bench.service(env=pooled_env) as pooled:
            for _ in range(runs):
                for path, base in (("direct", direct), ("PgBouncer", pooled)):
                    health = httpx.get(base + "/health").json()
                    claims = bench.http(base, 16)
                    wake = wakeups(bench, base, tasks, waiters)
                    rows.append(
                        {
                            "path": path,
                            "claims_per_s": claims["claims_per_s"],
                            "claim_p99_ms": claims["p99_ms"],
                            **wake,
                            "notifications": health["notifications"],
                        }
                    )
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        bouncer.stop()
        bench.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--waiters", type=int, default=8)
    args = parser.parse_args()
    rows = run(args.seconds, args.runs, args.tasks, args.waiters)
    print("| path | claims/s, 16 connections | claim p99 ms | wake-up p50 ms | p99 ms | max ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['path']} | {r['claims_per_s']:,.0f} | {float(r['claim_p99_ms']):.2f} | {r['p50_ms']:.1f}"
            f" | {r['p99_ms']:.1f} | {r['max_ms']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
