"""supabase/schema.sql is the schema the migrations make: a database built from each is the same."""

from __future__ import annotations

import psycopg

from taskclaim import migrations
from tests.helpers import create_database, drop_database
from tests.schema import SNAPSHOT, describe


def test_the_snapshot_and_the_migrations_make_the_same_schema(pg_server_url: str, db_url: str) -> None:
    from_snapshot = create_database(pg_server_url, "taskclaim_snapshot")
    try:
        with psycopg.connect(from_snapshot, autocommit=True) as conn:
            conn.execute(SNAPSHOT.read_text().encode())  # the roles exist: db_url's migrations made them
        built, loaded = describe(db_url), describe(from_snapshot)
        for part in built:
            assert built[part] == loaded[part], (
                f"supabase/schema.sql differs from the migrations in its {part}; run ./dev schema"
            )
    finally:
        drop_database(from_snapshot)


def test_a_changed_migration_would_be_noticed(pg_server_url: str, db_url: str) -> None:
    """The comparison sees a function's body: it is not comparing names only."""
    changed = create_database(pg_server_url, "taskclaim_changed")
    try:
        migrations.migrate(changed)
        with psycopg.connect(changed, autocommit=True) as conn:
            conn.execute(
                "create or replace function public.taskclaim_check_table(p_table_name text)"
                " returns void language plpgsql immutable set search_path = '' as $$ begin end $$"
            )
        assert describe(changed)["functions"] != describe(db_url)["functions"]
    finally:
        drop_database(changed)
