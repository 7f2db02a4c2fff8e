"""What one func_claim_task call costs the calling Python process, in CPU time, through psycopg.

    python -m bench.driver_cost

One connection, claims in a loop against a fresh embedded PostgreSQL; prints the client's CPU time per
call (time.process_time) and the wall time per call, for three ways of calling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg

from bench.steps import CLAIM_SQL, Bench, Sizes, new_workdir

CALLS = 5000


def measure(call: Callable[[], Any]) -> tuple[float, float]:
    for _ in range(200):  # warm: prepared statement, caches
        call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(CALLS):
        call()
    return (time.process_time() - cpu) / CALLS * 1e6, (time.perf_counter() - wall) / CALLS * 1e6


def main() -> None:
    bench = Bench(Sizes(), new_workdir())
    bench.start()
    try:
        bench.reset(4 * (CALLS + 200))
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
            print("| call | client CPU µs/call | wall µs/call |")
            print("| --- | ---: | ---: |")
            for label, call in ways.items():
                cpu, wall = measure(call)
                print(f"| {label} | {cpu:.1f} | {wall:.0f} |")
    finally:
        bench.stop()


if __name__ == "__main__":
    main()
