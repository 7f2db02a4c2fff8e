"""Forward-only migrations from ``supabase/migrations``, recorded where the Supabase CLI records them.

Each file runs in its own transaction; a session-level advisory lock makes concurrent runs safe (the
second waits, then finds everything applied). Applied versions go to
``supabase_migrations.schema_migrations`` so ``supabase db push`` and ``taskclaim migrate`` agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

_FILE = re.compile(r"^(\d{14})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x7461736B636C6D  # "taskclm": one lock for every migrating process of this database


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def migrations_dir() -> Path:
    packaged = Path(__file__).parent / "sql" / "migrations"  # in a wheel
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "supabase" / "migrations"  # in a checkout


def load(directory: Path | None = None) -> list[Migration]:
    directory = directory or migrations_dir()
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file name {path.name!r} is not <14 digits>_<name>.sql")
        found.append(Migration(match.group(1), match.group(2), path))
    return found


_BOOKKEEPING = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
  version text not null primary key,
  statements text[],
  name text
);
"""


def applied_versions(conn: psycopg.Connection[object]) -> set[str]:
    rows = conn.execute("select version from supabase_migrations.schema_migrations").fetchall()
    return {str(row[0]) for row in rows}  # type: ignore[index]


def pending(url: str, directory: Path | None = None) -> list[Migration]:
    """The migrations ``url`` has not applied yet (all of them on a database never migrated)."""
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("select to_regclass('supabase_migrations.schema_migrations')").fetchone()
        done = applied_versions(conn) if exists and exists[0] else set()
    return [m for m in load(directory) if m.version not in done]


def migrate(url: str, directory: Path | None = None) -> list[Migration]:
    """Apply what is not applied yet; return the migrations this call applied."""
    pending = load(directory)
    applied: list[Migration] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            with conn.transaction():
                conn.execute(_BOOKKEEPING)
            done = applied_versions(conn)
            for migration in pending:
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "insert into supabase_migrations.schema_migrations (version, name, statements)"
                        " values (%s, %s, array[%s])",
                        (migration.version, migration.name, migration.sql),
                    )
                applied.append(migration)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
