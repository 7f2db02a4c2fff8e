"""Small helpers for making rows and reading them back; no stand-ins, only SQL on the real database."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from taskclaim.tokens import new_token, token_hash

Conn = psycopg.Connection[DictRow]


def database_on(server_url: str, name: str) -> str:
    """``server_url`` with its database replaced by ``name``."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path="/" + name))


def create_database(server_url: str, prefix: str) -> str:
    """A new, empty database on the server; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    return database_on(server_url, name)


def drop_database(url: str) -> None:
    server_url = database_on(url, "postgres")
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')


def make_project(
    conn: Conn, user_id: uuid.UUID | None = None, project_id: uuid.UUID | None = None
) -> uuid.UUID:
    user_id = user_id or uuid.uuid4()
    row = conn.execute(
        "insert into public.projects (id, user_id) values (coalesce(%s, gen_random_uuid()), %s) returning id",
        (project_id, user_id),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row["id"]))


def make_task(
    conn: Conn,
    project_id: uuid.UUID,
    *,
    task_type: str = "render",
    params: dict[str, Any] | None = None,
    created_at: datetime | None = None,
    dependant_on: uuid.UUID | None = None,
    max_attempts: int = 3,
) -> uuid.UUID:
    row = conn.execute(
        "insert into public.tasks (project_id, task_type, params, created_at, dependant_on,"
        " max_attempts) values (%s, %s, %s, coalesce(%s, clock_timestamp()), %s, %s) returning id",
        (project_id, task_type, Jsonb(params or {}), created_at, dependant_on, max_attempts),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row["id"]))


def make_tasks(conn: Conn, project_id: uuid.UUID, count: int, task_type: str = "render") -> list[uuid.UUID]:
    rows = conn.execute(
        "insert into public.tasks (project_id, task_type, params, created_at)"
        " select %s, %s, jsonb_build_object('n', n), now() + n * interval '1 microsecond'"
        " from generate_series(1, %s) n returning id",
        (project_id, task_type, count),
    ).fetchall()
    return [uuid.UUID(str(row["id"])) for row in rows]


def task(conn: Conn, task_id: uuid.UUID | str) -> dict[str, Any]:
    row = conn.execute("select * from public.tasks where id = %s", (task_id,)).fetchone()
    assert row is not None, f"no task {task_id}"
    return dict(row)


def status_counts(conn: Conn) -> dict[str, int]:
    rows = conn.execute("select status::text as s, count(*) as n from public.tasks group by 1")
    return {r["s"]: r["n"] for r in rows}


def nested(depth: int) -> Any:
    """``1`` inside ``depth`` arrays: a JSON value that nests ``depth`` levels deep."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def personal_token(conn: Conn, user: uuid.UUID, expires_at: datetime | None = None) -> str:
    """A new personal access token of ``user``, stored as the CLI stores it (its SHA-256 only)."""
    token = new_token()
    conn.execute(
        "insert into public.user_api_token (user_id, jti_hash, expires_at) values (%s, %s, %s)",
        (user, token_hash(token), expires_at),
    )
    return token


def explain_buffers(conn: Conn, statement: str, params: tuple[object, ...]) -> int:
    """Shared buffers (hits + reads) of ``EXPLAIN (ANALYZE, BUFFERS)`` of ``statement``, which it runs."""
    row = conn.execute(f"explain (analyze, buffers, format json) {statement}", params).fetchone()
    assert row is not None
    plan = row["QUERY PLAN"]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    top = plan[0]["Plan"]
    return int(top["Shared Hit Blocks"] + top["Shared Read Blocks"])


def metric(base_url: str, name: str) -> float:
    """The value of an unlabelled metric on a service's ``/metrics``."""
    import httpx

    for line in httpx.get(base_url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 15) -> None:
    """Return once ``predicate()`` holds (checked every 20 ms); fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def long_polls_waiting(base_url: str, count: int = 1) -> None:
    """Return once the service holds ``count`` long polls waiting for a task (its own gauge says so), so
    that what the test does next happens while they wait, not before."""
    wait_until(
        lambda: metric(base_url, "taskclaim_long_polls_waiting") == count, f"{count} waiting long poll(s)"
    )
