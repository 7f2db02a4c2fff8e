"""The ``taskclaim`` command against the real database: tokens, projects, enqueue, status, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx
import pytest

from taskclaim.tokens import token_hash
from tests.acceptance.conftest import bearer
from tests.helpers import Conn
from tests.processes import ServiceProcess

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
