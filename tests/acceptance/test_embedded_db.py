"""``taskclaim db start|url|psql|stop``: the embedded PostgreSQL as a tool of its own, running after the
command that started it returns, so psql and the client's fallback work with the service stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg


def taskclaim(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SUPABASE_DB_URL")}
    return subprocess.run(
        [sys.executable, "-m", "taskclaim", *args],
        env={**env, "TASKCLAIM_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_db_start_keeps_it_running_until_db_stop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    started = taskclaim(data, "db", "start")
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    try:
        with psycopg.connect(url) as conn:  # the command has returned; the server is still there, migrated
            assert conn.execute("select count(*) from public.tasks").fetchone() == (0,)
        assert taskclaim(data, "db", "url").stdout.strip() == url
        status = taskclaim(data, "status")  # a command that uses it and leaves does not stop it
        assert status.returncode == 0, status.stderr
        assert "embedded PostgreSQL" in status.stderr
        psql = taskclaim(data, "db", "psql", "-Atc", "select 40 + 2")
        assert (psql.returncode, psql.stdout.strip()) == (0, "42"), psql.stderr
        with psycopg.connect(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        stopped = taskclaim(data, "db", "stop")
    assert stopped.returncode == 0 and stopped.stdout.strip() == "stopped", stopped.stderr
    after = taskclaim(data, "db", "url")
    assert after.returncode == 1 and "not running" in after.stderr
    assert len(after.stderr.strip().splitlines()) == 1


def test_db_commands_refuse_a_configured_database(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taskclaim", "db", "start"],
        env={
            **os.environ,
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x",
            "TASKCLAIM_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "embedded one only" in result.stderr
