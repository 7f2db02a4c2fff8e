"""The Supabase CLI and ``taskclaim migrate`` agree about which migrations a database has.

Both record applied versions in ``supabase_migrations.schema_migrations``: whichever applies the
migrations, the other then finds nothing to do. Runs where ``TASKCLAIM_SUPABASE_CLI`` names a ``supabase``
binary (``.ci/run`` installs the pinned npm package) and the tests' PostgreSQL is reached over TCP, which
the CLI needs (it cannot take a Unix socket); elsewhere these tests are deselected, with a line saying so.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from taskclaim import migrations
from tests.helpers import create_database, drop_database

pytestmark = pytest.mark.supabase_cli
REPO = Path(__file__).resolve().parents[2]


def supabase(*args: str) -> str:
    cli = os.environ["TASKCLAIM_SUPABASE_CLI"]
    done = subprocess.run([cli, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def cli_url(url: str) -> str:
    assert urlsplit(url).hostname, f"the Supabase CLI needs PostgreSQL over TCP, not {url}"
    return url + ("&" if "?" in url else "?") + "sslmode=disable"  # local PostgreSQL has no TLS


@pytest.fixture
def empty_url(pg_server_url: str) -> Iterator[str]:
    url = create_database(pg_server_url, "taskclaim_cli")
    yield url
    drop_database(url)


def versions() -> list[str]:
    return [m.version for m in migrations.load()]


def test_supabase_db_push_then_taskclaim_migrate_applies_nothing(empty_url: str) -> None:
    out = supabase("db", "push", "--db-url", cli_url(empty_url), "--yes")
    assert "Finished supabase db push" in out
    assert migrations.migrate(empty_url) == []
    with psycopg.connect(empty_url) as conn:
        assert sorted(migrations.applied_versions(conn)) == versions()
        assert conn.execute("select count(*) from public.tasks").fetchone() == (0,)


def test_after_taskclaim_migrate_the_cli_lists_every_migration_applied_on_both_sides(
    empty_url: str,
) -> None:
    assert [m.version for m in migrations.migrate(empty_url)] == versions()
    listed = supabase("migration", "list", "--db-url", cli_url(empty_url))
    rows = re.findall(r"`(\d{14})`\s*\|\s*`(\d{14})`", listed)
    assert rows == [(v, v) for v in versions()], listed  # (local, remote) for every migration
    assert "up to date" in supabase("db", "push", "--db-url", cli_url(empty_url), "--yes")
