"""The ``taskclaim`` command against the real database: tokens, projects, enqueue, status, errors."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import uuid

import httpx
import psycopg
import pytest

from taskclaim.cli import build_parser
from taskclaim.tokens import token_hash
from tests.acceptance.conftest import bearer
from tests.helpers import Conn
from tests.processes import ServiceProcess, free_port

CLAIM = "/functions/v1/claim-next-task"


def taskclaim(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskclaim", *args],
        env={**os.environ, "DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_lists_the_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "taskclaim", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("serve", "migrate", "token", "project", "enqueue", "status", "reap"):
        assert command in result.stdout


def test_token_life_cycle(db: Conn, db_url: str, service: ServiceProcess) -> None:
    user = uuid.uuid4()
    project = taskclaim(db_url, "project", "create", "--user", str(user)).stdout.strip()
    task_id = taskclaim(db_url, "enqueue", "--project", project, "--type", "t").stdout.strip()
    created = taskclaim(
        db_url, "token", "create", "--user", str(user), "--label", "gpu", "--expires-in", "30d"
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert created.stdout == token + "\n"  # the token alone on stdout
    stored = db.execute("select * from public.user_api_token where user_id = %s", (user,)).fetchone()
    assert stored is not None
    assert stored["jti_hash"] == token_hash(token)
    assert token not in str(stored)  # only the hash is kept

    response = httpx.post(service.url + CLAIM, headers=bearer(token), timeout=10)
    assert response.status_code == 200
    assert response.json()["task_id"] == task_id

    listed = taskclaim(db_url, "token", "list", "--user", str(user))
    assert str(stored["id"]) in listed.stdout and "gpu" in listed.stdout
    revoked = taskclaim(db_url, "token", "revoke", str(stored["id"]))
    assert revoked.returncode == 0, revoked.stderr
    row = db.execute("select revoked_at from public.user_api_token where id = %s", (stored["id"],)).fetchone()
    assert row is not None and row["revoked_at"] is not None


def test_serve_on_a_port_in_use_fails_with_one_line_and_no_banner(db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = taskclaim(db_url, "serve", "--port", port)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "serving on" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("jwks", ["not json", '{"no": "keys"}', "[1, 2]"])
def test_serve_with_a_jwks_that_is_no_jwks_fails_with_one_line(db_url: str, jwks: str) -> None:
    """It used to hang: the JWKS was parsed after the pool had opened, and the open pool kept the process
    alive after the failed startup."""
    result = subprocess.run(
        [sys.executable, "-m", "taskclaim", "serve", "--port", str(free_port())],
        env={**os.environ, "DATABASE_URL": db_url, "SUPABASE_JWKS": jwks},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'taskclaim: error: SUPABASE_JWKS is not a JWKS document (a JSON object with a "keys" list)'
    )


def test_admin_commands_refuse_a_database_with_migrations_pending(empty_db_url: str) -> None:
    for args in (["status"], ["project", "list"], ["task", "list"], ["reap"]):
        result = taskclaim(empty_db_url, *args)
        assert result.returncode == 1, args
        assert "pending" in result.stderr and "taskclaim migrate" in result.stderr, args
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    with psycopg.connect(empty_db_url) as conn:  # and nothing was created: the schema is not theirs to change
        assert conn.execute("select to_regclass('public.tasks')").fetchone() == (None,)


def test_task_commands_show_list_cancel_and_retry(db: Conn, db_url: str) -> None:
    user = uuid.uuid4()
    project = taskclaim(db_url, "project", "create", "--user", str(user), "--name", "films").stdout.strip()
    ids = [
        taskclaim(db_url, "enqueue", "--project", project, "--type", "render").stdout.strip()
        for _ in range(3)
    ]
    shown = taskclaim(db_url, "task", "show", ids[0])
    assert shown.returncode == 0, shown.stderr
    assert '"status": "Queued"' in shown.stdout and f'"task_id": "{ids[0]}"' in shown.stdout
    listed = taskclaim(db_url, "task", "list", "--limit", "2")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == [ids[2], ids[1]]
    assert "more: --cursor " in listed.stderr
    cursor = listed.stderr.split("more: --cursor ")[1].split()[0]
    rest = taskclaim(db_url, "task", "list", "--limit", "2", "--cursor", cursor, "--json")
    assert [t["task_id"] for t in json.loads(rest.stdout)["tasks"]] == [ids[0]]
    cancelled = taskclaim(db_url, "task", "cancel", ids[1], "--reason", "not needed")
    assert cancelled.stdout.strip() == f"{ids[1]} Cancelled"
    assert taskclaim(db_url, "task", "list", "--status", "Cancelled").stdout.count(ids[1]) == 1
    again = taskclaim(db_url, "task", "cancel", ids[1])
    assert again.returncode == 1 and "already ended" in again.stderr
    retried = taskclaim(db_url, "task", "retry", ids[1])
    assert retried.stdout.startswith(f"{ids[1]} Queued"), retried.stderr
    other = taskclaim(db_url, "task", "show", ids[0], "--user", str(uuid.uuid4()))
    assert other.returncode == 1 and "not found" in other.stderr
    projects = taskclaim(db_url, "project", "list", "--user", str(user))
    assert project in projects.stdout and "films" in projects.stdout


def test_every_option_says_its_default_or_what_it_is() -> None:
    parser = build_parser()
    missing = []

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        for action in p._actions:
            if action.dest == "help" or action.option_strings == ["--version"]:
                continue
            if hasattr(action, "choices") and isinstance(action.choices, dict):
                for name, child in action.choices.items():
                    walk(child, f"{path} {name}")
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(parser, "taskclaim")
    assert missing == []


def test_status_prints_counts(db: Conn, db_url: str) -> None:
    user = uuid.uuid4()
    project = taskclaim(db_url, "project", "create", "--user", str(user)).stdout.strip()
    for _ in range(3):
        taskclaim(db_url, "enqueue", "--project", project, "--type", "upscale", "--params", '{"x": 1}')
    result = taskclaim(db_url, "status")
    assert result.returncode == 0
    line = next(line for line in result.stdout.splitlines() if line.startswith("upscale"))
    assert line.split()[1] == "3"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["token", "create", "--user", "not-a-uuid"], "not a UUID"),
        (["enqueue", "--project", str(uuid.uuid4()), "--type", "t"], "not found"),
        (["enqueue", "--project", str(uuid.uuid4()), "--type", "t", "--params", "[1]"], "JSON object"),
        (["token", "revoke", str(uuid.uuid4())], "no token"),
        (["token", "create", "--user", str(uuid.uuid4()), "--expires-in", "soon"], "duration"),
        (["token", "create", "--user", str(uuid.uuid4()), "--expires-in", "30"], "not a duration: '30'"),
        (
            ["enqueue", "--project", str(uuid.uuid4()), "--type", "t", "--params", "{frame: 1}"],
            "not valid JSON",
        ),
        (["serve", "--port", "99999"], "not a TCP port"),
        (["reap", "--limit", "-1"], "at least 1"),
        (["task", "list", "--limit", "501"], "at most 500"),
        (["task", "show", str(uuid.uuid4())], "not found"),
        (["task", "retry", "nope"], "not a UUID"),
    ],
)
def test_bad_input_gives_one_readable_line_and_a_non_zero_exit(
    db_url: str, args: list[str], message: str
) -> None:
    result = taskclaim(db_url, *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
