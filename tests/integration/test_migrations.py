"""``taskclaim migrate``: forward-only, recorded in Supabase's table, safe to run twice or at once."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from taskclaim import migrations


def recorded(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select version from supabase_migrations.schema_migrations order by version"
        ).fetchall()
    return [r[0] for r in rows]


def run_migrate(url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.Popen(
        [sys.executable, "-m", "taskclaim", "migrate"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_files_are_named_for_the_supabase_cli() -> None:
    found = migrations.load()
    assert len(found) >= 3
    assert [m.version for m in found] == sorted(m.version for m in found)
    assert all(len(m.version) == 14 for m in found)


def test_second_migrate_changes_nothing(empty_db_url: str) -> None:
    first = migrations.migrate(empty_db_url)
    assert [m.version for m in first] == [m.version for m in migrations.load()]
    with psycopg.connect(empty_db_url) as conn:
        before = conn.execute(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'public'"
        ).fetchone()
    assert migrations.migrate(empty_db_url) == []
    with psycopg.connect(empty_db_url) as conn:
        after = conn.execute(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'public'"
        ).fetchone()
    assert before == after
    assert recorded(empty_db_url) == [m.version for m in migrations.load()]


def test_two_migrations_at_once_apply_each_file_once(empty_db_url: str) -> None:
    processes = [run_migrate(empty_db_url) for _ in range(2)]
    results = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], results
    outputs = sorted(out.strip() for out, _ in results)
    assert outputs[0].count("applied ") == len(migrations.load())
    assert outputs[1] == "nothing to apply"  # it waited for the lock, then found everything applied
    assert recorded(empty_db_url) == [m.version for m in migrations.load()]


def test_a_failing_migration_leaves_nothing_half_written(empty_db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "20990101000000_good.sql").write_text("create table public.good (id int);")
    (tmp_path / "20990101000001_bad.sql").write_text("create table public.half (id int); select 1/0;")
    try:
        migrations.migrate(empty_db_url, tmp_path)
    except psycopg.errors.DivisionByZero:
        pass
    else:
        raise AssertionError("the bad migration did not raise")
    with psycopg.connect(empty_db_url) as conn:
        tables = {
            r[0]
            for r in conn.execute("select tablename from pg_tables where schemaname = 'public'").fetchall()
        }
    assert "good" in tables
    assert "half" not in tables
    assert recorded(empty_db_url) == ["20990101000000"]
