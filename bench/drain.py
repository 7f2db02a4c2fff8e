"""Drain: how fast consumers empty a queue of N no-op tasks, taskclaim over HTTP beside pgqueuer in-process.

    python -m bench.drain [--tasks 20000] [--concurrency 1,4,16,64] [--pgqueuer-batch 10,100]

On one embedded PostgreSQL, in one run: for each C, N tasks are preloaded and vacuumed, then

- taskclaim: one reference ``Worker`` process with ``concurrency=C`` against ``taskclaim serve`` (what
  ``taskclaim worker`` runs, with a no-op Python handler);
- pgqueuer (pinned in the ``bench`` extra): C ``QueueManager`` processes in drain mode on asyncpg, its
  defaults (``batch_size=10``) and tuned (``batch_size=100``);
- the ceiling: pgbench with C clients running taskclaim's own claim and completion statements, one task
  per transaction pair, no HTTP and no worker (5 s; its tasks/s is transactions/s).

Each consumer connects first and says ready; the clock starts when all are told to go and stops when the
last has exited with the queue empty. Reported: tasks/s, the consumers' own CPU per task, the service's and
PostgreSQL's CPU per task (from /proc; PostgreSQL's includes its exited backends). Needs
``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.steps import KEY, Bench, Sizes, new_workdir

# One task claimed and completed per pgbench transaction: the statements the service runs, without HTTP.
CYCLE_SQL = (
    "select task_id from public.taskclaim_claim_batch(array['drain']::text[], null::uuid, 300) \\gset\n"
    "select 1 from public.taskclaim_complete_batch(array[:task_id]::uuid[], array['drain']::text[],"
    " array[null]::integer[], array[null]::jsonb[], array[null]::text[], null::uuid)"
)


def cpu_seconds(pid: int, reaped: bool = False) -> float:
    """A process's user + system CPU; with ``reaped``, also that of its children that have exited."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(bench: Bench) -> float:
    """PostgreSQL's CPU: the postmaster, its live backends and workers, and those that have exited
    (pgqueuer's consumers disconnect at the end, and their backends' time then moves to the postmaster)."""
    postmaster = int((bench.pg.pgdata / "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    total = cpu_seconds(postmaster, reaped=True)
    for child in children:
        try:
            total += cpu_seconds(int(child))
        except FileNotFoundError:  # it exited between the two reads; its time is in the reaped figure
            continue
    return total


def consumers(commands: list[list[str]], log_path: Path) -> tuple[float, float]:
    """Start the consumers, wait until each is ready, say go; the wall seconds until the last exits, and
    the CPU seconds they spent after go."""
    log = open(log_path, "a")  # noqa: SIM115 - shared by the consumers until they exit
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.drain_worker", *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,  # the worker's progress lines: written, as a user's would be
            text=True,
        )
        for command in commands
    ]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    cpu = 0.0
    for process in processes:
        assert process.stdout is not None
        out = process.stdout.read()
        assert process.wait(600) == 0, f"a consumer failed: see {log_path}"
        cpu += json.loads(out.strip().splitlines()[-1])["cpu_seconds"]
    elapsed = time.perf_counter() - started
    log.close()
    return elapsed, cpu


def pgqueuer_install(dsn: str) -> None:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    async def install() -> None:
        connection = await asyncpg.connect(dsn)
        await Queries(AsyncpgDriver(connection)).install()
        await connection.close()

    asyncio.run(install())


def pgqueuer_enqueue(dsn: str, count: int) -> None:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    async def enqueue() -> None:
        connection = await asyncpg.connect(dsn)
        queries = Queries(AsyncpgDriver(connection))
        await queries.clear_queue()
        await queries.enqueue(["bench"] * count, [b"{}"] * count, [0] * count)
        await connection.execute("vacuum analyze pgqueuer")
        await connection.close()

    asyncio.run(enqueue())


def run(tasks: int, concurrencies: list[int], batches: list[int]) -> list[dict[str, Any]]:
    bench = Bench(Sizes(), new_workdir())
    bench.start()
    rows: list[dict[str, Any]] = []
    try:
        dsn = bench.url
        with bench.service() as base:
            server_pid = bench.service_pid
            for c in concurrencies:
                bench.reset(tasks)
                before, pg_before = cpu_seconds(server_pid), postgres_cpu_seconds(bench)
                wall, cpu = consumers([["taskclaim", base, KEY, str(c)]], bench.workdir / "consumers.log")
                server = cpu_seconds(server_pid) - before
                postgres = postgres_cpu_seconds(bench) - pg_before
                assert bench.count("Complete") == tasks
                rows.append(_row("taskclaim over HTTP", c, tasks, wall, cpu, server, postgres))
                print(rows[-1], file=sys.stderr, flush=True)
        for c in concurrencies:
            bench.reset(60_000)
            pg_before = postgres_cpu_seconds(bench)
            figures = bench.pgbench(c, 5.0, CYCLE_SQL)
            done = 60_000 - bench.count("Queued")
            rows.append(
                {
                    "consumer": "pgbench claim + complete (no HTTP)",
                    "c": c,
                    "tasks_per_s": figures["claims_per_s"],  # one task per transaction
                    "consumer_cpu_ms_per_task": None,
                    "server_cpu_ms_per_task": None,
                    "postgres_cpu_ms_per_task": 1000 * (postgres_cpu_seconds(bench) - pg_before) / done,
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
        if batches:
            pgqueuer_install(dsn)
        for batch in batches:
            for c in concurrencies:
                pgqueuer_enqueue(dsn, tasks)
                command = ["pgqueuer", dsn, str(batch)]
                pg_before = postgres_cpu_seconds(bench)
                wall, cpu = consumers([command] * c, bench.workdir / "consumers.log")
                postgres = postgres_cpu_seconds(bench) - pg_before
                rows.append(_row(f"pgqueuer batch_size={batch}", c, tasks, wall, cpu, None, postgres))
                print(rows[-1], file=sys.stderr, flush=True)
    finally:
        bench.stop()
    return rows


def _row(
    name: str, c: int, tasks: int, wall: float, cpu: float, server: float | None, postgres: float
) -> dict[str, Any]:
    return {
        "consumer": name,
        "c": c,
        "tasks_per_s": tasks / wall,
        "consumer_cpu_ms_per_task": 1000 * cpu / tasks,
        "server_cpu_ms_per_task": None if server is None else 1000 * server / tasks,
        "postgres_cpu_ms_per_task": 1000 * postgres / tasks,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| consumers | C | tasks/s | consumers' CPU ms/task | service CPU ms/task | PostgreSQL CPU ms/task |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        server = "" if r["server_cpu_ms_per_task"] is None else f"{r['server_cpu_ms_per_task']:.3f}"
        own = "" if r["consumer_cpu_ms_per_task"] is None else f"{r['consumer_cpu_ms_per_task']:.3f}"
        lines.append(
            f"| {r['consumer']} | {r['c']} | {r['tasks_per_s']:,.0f} | {own} | {server}"
            f" | {r['postgres_cpu_ms_per_task']:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--pgqueuer-batch", default="10,100")
    args = parser.parse_args()
    rows = run(
        args.tasks,
        [int(c) for c in args.concurrency.split(",")],
        [int(b) for b in args.pgqueuer_batch.split(",") if b],
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
