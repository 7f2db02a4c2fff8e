"""Fixtures shared by every test: a real PostgreSQL, a migrated database, clean tables per test.

With DATABASE_URL set, the tests make their databases on that server; otherwise they start an
embedded PostgreSQL of their own (fsync off: the tests do not need durability, only correctness).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import DictRow, dict_row

from taskclaim import migrations
from taskclaim.embedded import EmbeddedPostgres
from tests.helpers import create_database, drop_database
from tests.pgbouncer import pgbouncer_path

FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL of a PostgreSQL server on which the tests may create databases."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), settings=FAST_SETTINGS)
    url = server.start()
    yield url
    server.release()


@pytest.fixture(scope="session")
def db_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database on that server, migrated once for the whole session."""
    url = create_database(pg_server_url, "taskclaim_test")
    migrations.migrate(url)
    yield url
    drop_database(url)


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """A database with nothing in it, for migration tests."""
    url = create_database(pg_server_url, "taskclaim_empty")
    yield url
    drop_database(url)


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection[DictRow]]:
    """An autocommit connection to the session database, its tables emptied first."""
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("truncate public.tasks, public.projects, public.user_api_token cascade")
        yield conn


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def chromium_path() -> str | None:
    """The Chromium the browser tests drive: TASKCLAIM_CHROMIUM, or Debian's ``chromium`` on PATH."""
    return os.environ.get("TASKCLAIM_CHROMIUM") or shutil.which("chromium")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of the Supabase CLI need its binary (TASKCLAIM_SUPABASE_CLI, installed by .ci/run), and tests
    in a browser need a Chromium (Debian's, installed by .ci/run): without them they are deselected, and
    the summary says so, rather than skipped."""
    needs = {
        "supabase_cli": bool(os.environ.get("TASKCLAIM_SUPABASE_CLI")),
        "browser": bool(chromium_path()),
        "pgbouncer": bool(pgbouncer_path()),
    }
    for marker, available in needs.items():
        if available:
            continue
        drop = [item for item in items if item.get_closest_marker(marker)]
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = [item for item in items if item not in drop]
            config.stash.setdefault(_DESELECTED, {})[marker] = len(drop)


_DESELECTED = pytest.StashKey[dict[str, int]]()
_WHY = {
    "supabase_cli": "Supabase CLI test(s) not run: set TASKCLAIM_SUPABASE_CLI to a supabase binary "
    "(.ci/run installs one) and DATABASE_URL to a PostgreSQL over TCP",
    "browser": "browser test(s) not run: install Chromium (apt-get install chromium; .ci/run does) "
    "or set TASKCLAIM_CHROMIUM to its executable",
    "pgbouncer": "PgBouncer test(s) not run: install it (apt-get install pgbouncer; .ci/run does) "
    "or set TASKCLAIM_PGBOUNCER to its executable",
}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for marker, count in config.stash.get(_DESELECTED, {}).items():
        terminalreporter.write_line(f"{count} {_WHY[marker]}")
