"""``supabase/schema.sql``: the current schema, as the migrations leave it, in one file to read.

``./dev schema`` rewrites it: the migrations are applied to a fresh embedded PostgreSQL and ``pg_dump`` (the
``pgserver`` wheel's) writes out the ``public`` and ``auth`` schemas. ``describe`` lists what a database
holds (tables, columns, indexes, constraints, triggers, policies, functions, grants) so the test can
hold a database built from the migrations and one built from this file to be the same.

It also writes ``supabase/functions/_shared/contract.json``, the limits and body schemas the Deno Edge
Functions check, generated from the same Python sources as the service's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from taskclaim import migrations
from taskclaim.embedded import EmbeddedPostgres, bin_dir
from taskclaim.openapi import edge_contract
from tests.helpers import create_database

SNAPSHOT = Path(__file__).resolve().parents[1] / "supabase" / "schema.sql"
CONTRACT = SNAPSHOT.parent / "functions" / "_shared" / "contract.json"
HEADER = """\
-- The current schema of taskclaim: what supabase/migrations leave in a database, written out by
-- `./dev schema` (pg_dump of the public and auth schemas). Read it to see every table, index, function,
-- policy and grant as it is now; change the schema through a new migration, never here:
--
--   1. Copy a function whole into a new migration (supabase/migrations/<14 digits>_<name>.sql) and change
--      it there with CREATE OR REPLACE; the older migrations stay as they were (they are history).
--   2. Run `./dev schema` and commit this file with the migration.
--
-- tests/integration/test_schema_snapshot.py fails while this file and the migrations differ.
"""


def dump(url: str) -> str:
    """The schema of ``url`` as SQL that loads into an empty database (one that has the roles)."""
    out = subprocess.run(
        [str(bin_dir() / "pg_dump"), "--schema-only", "--no-owner", "-n", "public", "-n", "auth", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [line for line in out.splitlines() if not line.startswith(("-- Dumped from", "-- Dumped by"))]
    text = "\n".join(lines).strip() + "\n"
    for schema in ("public", "auth"):  # both exist already on Supabase, and public everywhere
        text = text.replace(f"CREATE SCHEMA {schema};", f"CREATE SCHEMA IF NOT EXISTS {schema};")
    return HEADER + "\n" + text


def contract() -> str:
    """``supabase/functions/_shared/contract.json``: the limits and body schemas the Edge Functions check."""
    return json.dumps(edge_contract(), indent=1, ensure_ascii=False) + "\n"


def write() -> None:
    CONTRACT.write_text(contract())
    with tempfile.TemporaryDirectory() as directory:
        server = EmbeddedPostgres(Path(directory))
        try:
            url = create_database(server.start(), "taskclaim_schema")
            migrations.migrate(url)
            SNAPSHOT.write_text(dump(url))
        finally:
            server.release()
    print(f"wrote {SNAPSHOT}")


_CATALOG = {
    "tables": """
        select c.relname, c.relkind::text, c.relrowsecurity, c.reloptions::text, c.relacl::text
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname in ('public', 'auth') and c.relkind in ('r', 'v', 'S')""",
    "columns": """
        select c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attacl::text
          from pg_attribute a join pg_class c on c.oid = a.attrelid
          join pg_namespace n on n.oid = c.relnamespace
          left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
         where n.nspname in ('public', 'auth') and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped""",
    "indexes": """
        select indexname, indexdef from pg_indexes where schemaname in ('public', 'auth')""",
    "constraints": """
        select c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
          from pg_constraint c join pg_namespace n on n.oid = c.connamespace
         where n.nspname in ('public', 'auth')""",
    "triggers": """
        select t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid)
          from pg_trigger t where not t.tgisinternal""",
    "policies": """
        select tablename, policyname, permissive, roles::text, cmd, qual, with_check
          from pg_policies where schemaname in ('public', 'auth')""",
    "functions": """
        select p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.proacl::text
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname in ('public', 'auth')""",
    "types": """
        select t.typname, array_agg(e.enumlabel order by e.enumsortorder)::text
          from pg_type t join pg_enum e on e.enumtypid = t.oid
          join pg_namespace n on n.oid = t.typnamespace
         where n.nspname in ('public', 'auth') group by t.typname""",
}


def describe(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything of the schema that a migration can change, in a form two databases can be compared by."""
    with psycopg.connect(url) as conn:
        return {name: sorted(conn.execute(sql).fetchall(), key=repr) for name, sql in _CATALOG.items()}


if __name__ == "__main__":
    if sys.argv[1:] != ["write"]:
        sys.exit("usage: python -m tests.schema write")
    write()
