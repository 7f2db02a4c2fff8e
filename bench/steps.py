"""The benchmark's steps, each against the same embedded PostgreSQL in the same run.

Claims per second are counted in the database (tasks that left the queue during the run), not trusted
from a client: a figure is a claim that really happened.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from tests.helpers import explain_buffers
from tests.processes import free_port

from bench.load import http_load
from taskclaim import migrations
from taskclaim.embedded import EmbeddedPostgres, bin_dir
from taskclaim.queries import query

KEY = "bench-service-key-" + uuid.uuid4().hex
CLAIM_SQL = query("func_claim_task") % {"worker_id": "'bench'"}  # literal: pgbench runs it too
# What TaskClient.claim_many sends on the direct-RPC path: several claims in one statement.
BATCH_SQL = query("claim_batch")
LIST_SQL = (
    "select * from public.taskclaim_list_tasks(p_user_id => %s, p_oldest_first => %s, p_cursor => %s,"
    " p_limit => 50)"
)


@dataclass
class Sizes:
    seconds: float = 10.0
    concurrencies: tuple[int, ...] = (1, 4, 16, 64)
    finished: tuple[int, ...] = (0, 1_000_000, 10_000_000)
    blocked: int = 100_000
    growth_seconds: float = 5.0
    sustained_minutes: int = 10
    minute_seconds: float = 60.0
    cycle_connections: int = 16
    rpc_batch: int = 10

    @classmethod
    def smoke(cls) -> Sizes:
        return cls(
            seconds=1.0,
            concurrencies=(1, 4),
            finished=(0, 2_000),
            blocked=500,
            growth_seconds=1.0,
            sustained_minutes=2,
            minute_seconds=1.0,
            cycle_connections=4,
        )


@dataclass
class Bench:
    sizes: Sizes
    workdir: Path
    pg: EmbeddedPostgres = field(init=False)
    url: str = field(init=False)
    project: uuid.UUID = field(init=False)
    service_pid: int = field(init=False)

    def start(self) -> None:
        self.pg = EmbeddedPostgres(self.workdir / "pg")  # PostgreSQL's settings as shipped
        self.pg.start()
        with psycopg.connect(self.pg.url(), autocommit=True) as conn:
            conn.execute("create database bench")
        self.url = self.pg.url("bench")
        migrations.migrate(self.url)
        with self.connect() as conn:
            self.project = uuid.uuid4()
            conn.execute("insert into projects (id, user_id) values (%s, %s)", (self.project, uuid.uuid4()))

    def stop(self) -> None:
        self.pg.release()

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True)

    # -- the queue's state ---------------------------------------------------------------------------

    def reset(self, ready: int) -> None:
        """An empty queue with ``ready`` claimable tasks, vacuumed and analysed."""
        with self.connect() as conn:
            conn.execute("truncate tasks")
            self.add_ready(conn, ready)
            conn.execute("vacuum analyze tasks")

    def add_ready(self, conn: psycopg.Connection[Any], count: int) -> None:
        conn.execute(
            "insert into tasks (project_id, task_type, params, created_at)"
            " select %s, 'bench', jsonb_build_object('n', n, 'prompt', 'a cat in a hat'),"
            " now() + n * interval '1 microsecond' from generate_series(1, %s) n",
            (self.project, count),
        )

    def count(self, status: str) -> int:
        with self.connect() as conn:
            row = conn.execute("select count(*) from tasks where status = %s", (status,)).fetchone()
        assert row is not None
        return int(row[0])

    # -- step 1: the ceiling ---------------------------------------------------------------------------

    def pgbench(self, clients: int, seconds: float, statement: str = CLAIM_SQL) -> dict[str, float]:
        script = self.workdir / "claim.sql"
        script.write_text(statement + ";\n")
        script.chmod(0o644)
        socket_dir = str(self.pg.socket_dir)
        result = subprocess.run(
            [
                str(bin_dir() / "pgbench"),
                "-n",
                "-M",
                "prepared",
                "-f",
                str(script),
                "-c",
                str(clients),
                "-j",
                str(min(clients, 2)),
                "-T",
                str(max(1, round(seconds))),
                "-h",
                socket_dir,
                "-p",
                "5432",
                "-U",
                "postgres",
                "bench",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", result.stdout)
        latency = re.search(r"latency average = ([\d.]+) ms", result.stdout)
        assert tps and latency, result.stdout
        if self.count("Queued") == 0:  # an empty queue answers fast: the figure would be a lie
            raise RuntimeError("the queue ran dry during pgbench; add more ready tasks")
        return {"claims_per_s": float(tps.group(1)), "latency_ms": float(latency.group(1))}

    def ceiling(self, clients: int) -> dict[str, float]:
        self.reset(self._enough())
        before = self.count("Queued")
        figures = self.pgbench(clients, self.sizes.seconds)
        figures["claimed"] = before - self.count("Queued")
        return figures

    def _enough(self) -> int:
        return int(40_000 * max(1.0, self.sizes.seconds)) if self.sizes.seconds > 1 else 20_000

    # -- step 2: the direct RPC through the Python driver ------------------------------------------------

    def rpc(self, clients: int, batch: int = 1) -> dict[str, float]:
        """One process per connection, each calling func_claim_task in a loop (sync psycopg, prepared):
        the driver's own cost, with no event loop or GIL shared between connections. With ``batch`` > 1
        each call is taskclaim_claim_batch for that many tasks instead."""
        self.reset(self._enough())
        before = self.count("Queued")
        context = multiprocessing.get_context("fork")
        start_at = time.time() + 1.0 + clients * 0.02  # every process connected before the clock starts
        with context.Pool(clients) as pool:
            results = pool.starmap(_rpc_worker, [(self.url, start_at, self.sizes.seconds, batch)] * clients)
        claimed = before - self.count("Queued")
        latencies = sorted(x for r in results for x in r)
        return {
            "claims_per_s": claimed / self.sizes.seconds,
            "p50_ms": _quantile(latencies, 0.5) * 1000,
            "p99_ms": _quantile(latencies, 0.99) * 1000,
            "claimed": claimed,
        }

    # -- step 3: HTTP ------------------------------------------------------------------------------------

    @contextmanager
    def service(self, workers: int = 1, env: dict[str, str] | None = None) -> Iterator[str]:
        """``taskclaim serve`` on this database; ``env`` adds to (or overrides) its environment."""
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": self.url,
            "SUPABASE_SERVICE_ROLE_KEY": KEY,
            "TASKCLAIM_DATA_DIR": str(self.workdir / f"service-{port}"),
            **(env or {}),
        }
        log = open(self.workdir / "serve.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "taskclaim", "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=log,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}"
        self.service_pid = process.pid
        try:
            _wait_healthy(base, process)
            yield base
        finally:
            process.terminate()
            process.wait(30)
            log.close()

    def http(self, base: str, connections: int) -> dict[str, float | str]:
        self.reset(self._enough())
        before = self.count("Queued")
        figures = http_load(base + "/functions/v1/claim-next-task", KEY, connections, self.sizes.seconds)
        claimed = before - self.count("Queued")
        return {**figures, "claims_per_s": claimed / float(figures["seconds"]), "claimed": claimed}

    def cycle(self, base: str, connections: int, seconds: float | None = None) -> dict[str, float | str]:
        seconds = seconds or self.sizes.seconds
        before = self.count("Complete")
        figures = http_load(base + "/functions/v1/claim-next-task", KEY, connections, seconds, "cycle.lua")
        completed = self.count("Complete") - before
        return {**figures, "cycles_per_s": completed / float(figures["seconds"]), "completed": completed}

    # -- step 4: growth --------------------------------------------------------------------------------

    def growth(self) -> list[dict[str, float]]:
        """Claim latency (pgbench, one client) as finished and blocked tasks pile up ahead of the ready."""
        rows = []
        with self.connect() as conn:
            conn.execute("truncate tasks")
        have = 0
        for finished in self.sizes.finished:
            with self.connect() as conn:
                self._add_finished(conn, finished - have)
                have = finished
            for blocked in (0, self.sizes.blocked):
                with self.connect() as conn:
                    conn.execute("delete from tasks where status <> 'Complete'")
                    if blocked:
                        self._add_blocked(conn, blocked)
                    self.add_ready(conn, max(5_000, int(20_000 * self.sizes.growth_seconds)))
                    conn.execute("vacuum analyze tasks")
                    # Write out the bulk load now, so that its checkpoint does not land in the measurement.
                    conn.execute("checkpoint")
                    buffers = self._claim_buffers(conn)
                    pages = self._list_buffers(conn) if not blocked else {}
                figures = self.pgbench(1, self.sizes.growth_seconds)
                rows.append(
                    {"finished": finished, "blocked": blocked, "buffers": buffers, **pages, **figures}
                )
        return rows

    def _list_buffers(self, conn: psycopg.Connection[Any]) -> dict[str, int]:
        """Shared buffers of one page of 50 of list-tasks (the operators' listing): the first page and the
        page after it, newest first (the ready tasks) for the service and for the one user who owns every
        task here, and oldest first (through the finished ones) for the service."""
        owner = conn.execute("select user_id from projects where id = %s", (self.project,)).fetchone()
        assert owner is not None
        figures = {}
        with psycopg.connect(conn.info.dsn, autocommit=True, row_factory=dict_row) as session:
            for scope, user, oldest in (
                ("service", None, False),
                ("user", owner[0], False),
                ("oldest", None, True),
            ):
                params: tuple[object, ...] = (user, oldest, None)
                rows = session.execute(LIST_SQL, params).fetchall()  # warms the function and the catalog
                figures[f"list_{scope}_first"] = explain_buffers(session, LIST_SQL, params)
                after = (user, oldest, rows[-1]["cursor"])
                session.execute(LIST_SQL, after).fetchall()  # a cursor's first use reads the catalog
                figures[f"list_{scope}_next"] = explain_buffers(session, LIST_SQL, after)
        return figures

    def _claim_buffers(self, conn: psycopg.Connection[Any]) -> int:
        """Shared buffers one claim touches (EXPLAIN ANALYZE, BUFFERS), after two warm-up claims."""
        with psycopg.connect(conn.info.dsn, autocommit=True, row_factory=dict_row) as session:
            for _ in range(2):
                session.execute(CLAIM_SQL).fetchall()
            return explain_buffers(session, CLAIM_SQL, ())

    def _add_finished(self, conn: psycopg.Connection[Any], count: int) -> None:
        if count <= 0:
            return
        # Bulk load: triggers off (they only copy the owner and compute `blocked`, set here directly).
        owner = conn.execute("select user_id from projects where id = %s", (self.project,)).fetchone()
        assert owner is not None
        conn.execute("set session_replication_role = replica")
        step = 1_000_000
        for start in range(0, count, step):
            conn.execute(
                "insert into tasks (project_id, user_id, task_type, status, created_at, updated_at,"
                " generation_processed_at, attempts)"
                " select %s, %s, 'old', 'Complete', t, t, t, 1"
                " from (select now() - interval '30 days' + n * interval '1 ms' as t"
                "       from generate_series(%s::bigint, %s::bigint) n) s",
                (self.project, owner[0], start + 1, min(count, start + step)),
            )
        conn.execute("set session_replication_role = origin")

    def _add_blocked(self, conn: psycopg.Connection[Any], count: int) -> None:
        parent = conn.execute(
            "insert into tasks (project_id, task_type, status) values (%s, 'parent', 'In Progress')"
            " returning id",
            (self.project,),
        ).fetchone()
        assert parent is not None
        conn.execute(
            "insert into tasks (project_id, task_type, dependant_on, created_at)"
            " select %s, 'blocked', %s, now() - interval '1 day' + n * interval '1 ms'"
            " from generate_series(1, %s) n",
            (self.project, parent[0], count),
        )

    # -- step 5: sustained -------------------------------------------------------------------------------

    def sustained(self, base: str, rate_hint: float) -> dict[str, Any]:
        """Claim + complete over HTTP at full rate, minute by minute, autovacuum as shipped."""
        total_seconds = self.sizes.sustained_minutes * self.sizes.minute_seconds
        self.reset(int(max(rate_hint, 100) * total_seconds * 1.5) + 10_000)
        minutes = []
        for _ in range(self.sizes.sustained_minutes):
            figures = self.cycle(base, self.sizes.cycle_connections, self.sizes.minute_seconds)
            minutes.append(float(figures["cycles_per_s"]))
        with self.connect() as conn:
            row = conn.execute(
                "select n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count,"
                " pg_size_pretty(pg_total_relation_size('tasks'))"
                " from pg_stat_user_tables where relname = 'tasks'"
            ).fetchone()
        assert row is not None
        return {
            "per_minute": minutes,
            "live_tuples": row[0],
            "dead_tuples": row[1],
            "autovacuums": row[2],
            "autoanalyzes": row[3],
            "size": row[4],
            "queued_left": self.count("Queued"),
        }


def _rpc_worker(url: str, start_at: float, seconds: float, batch: int) -> list[float]:
    """One connection: claim from ``start_at`` for ``seconds``, one task or ``batch`` tasks per call."""
    latencies: list[float] = []
    sql, params = (
        (CLAIM_SQL, None)
        if batch == 1
        else (BATCH_SQL, {"worker_ids": ["bench"] * batch, "user_id": None, "lease_seconds": 300})
    )
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql, params, prepare=True).fetchall()  # prepared before the clock starts
        time.sleep(max(0.0, start_at - time.time()))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            cur.execute(sql, params, prepare=True).fetchall()
            latencies.append(time.perf_counter() - started)
    return latencies


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def _wait_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("taskclaim serve exited during start")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("taskclaim serve did not become healthy")


def new_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="taskclaim-bench-"))
