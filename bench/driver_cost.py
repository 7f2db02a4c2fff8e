"""What one func_claim_task call costs the calling Python process, in CPU time, through psycopg.

    python -m bench.driver_cost

One connection, claims in a loop against a fresh embedded PostgreSQL; prints the client's CPU time per
call (time.process_time) and the wall time per call, for several ways of calling, and pgbench's own
cost for the same statement.
"""

from __future__ import annotations

import resource
import subprocess
import time
from collections.abc import Callable
from typing import Any

import psycopg

from bench.steps import CLAIM_SQL, Bench, Sizes, new_workdir
from taskclaim.embedded import bin_dir

CALLS = 5000


def measure(call: Callable[[], Any]) -> tuple[float, float]:
    for _ in range(200):  # warm: prepared statement, caches
        call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(CALLS):
        call()
    return (time.process_time() - cpu) / CALLS * 1e6, (time.perf_counter() - wall) / CALLS * 1e6


def pgbench_cost(bench: Bench) -> tuple[float, float]:
    """pgbench's own CPU per claim (user + system of the child), for the same statement."""
    script = bench.workdir / "claim.sql"
    script.write_text(CLAIM_SQL + ";\n")
    before, queued = resource.getrusage(resource.RUSAGE_CHILDREN), bench.count("Queued")
    command = [str(bin_dir() / "pgbench"), "-n", "-M", "prepared", "-c", "1", "-T", "5", "-f", str(script)]
    subprocess.run([*command, bench.url], check=True, capture_output=True)
    after, calls = resource.getrusage(resource.RUSAGE_CHILDREN), queued - bench.count("Queued")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return cpu / calls * 1e6, 5.0 / calls * 1e6


def main() -> None:
    bench = Bench(Sizes(), new_workdir())
    bench.start()
    try:
        bench.reset(5 * (CALLS + 200) + 50_000)  # the ways below, then pgbench for 5 s
        with psycopg.connect(bench.url, autocommit=True) as conn:
            text_cursor, binary_cursor = conn.cursor(), conn.cursor(binary=True)
            ways = {
                "conn.execute (a new cursor each call)": lambda: conn.execute(
                    CLAIM_SQL, prepare=True
                ).fetchall(),
                "one cursor, reused": lambda: text_cursor.execute(CLAIM_SQL, prepare=True).fetchall(),
                "one cursor, binary results": lambda: binary_cursor.execute(
                    CLAIM_SQL, prepare=True
                ).fetchall(),
            }
            pgconn = conn.pgconn  # libpq itself, under psycopg's Python layer: the floor for any Python code
            pgconn.prepare(b"claim", CLAIM_SQL.encode())
            ways["libpq through psycopg's pgconn.exec_prepared"] = lambda: [
                (pgconn.exec_prepared(b"claim", []),)
            ]
            print("| call | client CPU µs/call | wall µs/call |")
            print("| --- | ---: | ---: |")
            for label, call in ways.items():
                cpu, wall = measure(call)
                print(f"| {label} | {cpu:.1f} | {wall:.0f} |")
            cpu, wall = pgbench_cost(bench)
            print(f"| pgbench -M prepared, one client (C) | {cpu:.1f} | {wall:.0f} |")
    finally:
        bench.stop()


if __name__ == "__main__":
    main()
