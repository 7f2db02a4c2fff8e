"""What each form of the claim costs PostgreSQL alone: pgbench, one client, against one or more databases.

    python -m bench.claim_forms postgresql://…/db_a postgresql://…/db_b [--seconds 8] [--rounds 2]

Each database must be migrated (to whatever version is being compared) and must hold nothing you want to
keep: before each form its tasks are replaced by 400,000 ready ones, half of them one user's and half
another's, interleaved, then vacuumed. The databases are alternated round by round, so that drift of the
machine falls on both. Prints each form's average latency; then ``EXPLAIN (ANALYZE, BUFFERS)`` of each
after eight warm-up calls, with 200,000 of one user's ready tasks ahead of another's 1,000.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row
from tests.helpers import explain_buffers

from taskclaim.queries import query

ALICE = "aaaaaaaa-0000-0000-0000-000000000001"
BOB = "bbbbbbbb-0000-0000-0000-000000000001"
FORMS = {
    "func_claim_task": query("func_claim_task") % {"worker_id": "'w'"},
    "func_claim_user_task": query("func_claim_user_task")
    % {"worker_id": "'w'", "user_id": f"'{ALICE}'::uuid"},
    "batch of 1": query("claim_batch")
    % {"worker_ids": "array['w']", "user_id": "null", "lease_seconds": "300"},
    "batch of 16": query("claim_batch")
    % {"worker_ids": "array_fill('w'::text, array[16])", "user_id": "null", "lease_seconds": "300"},
}


def refill(url: str, first: int, second: int, interleaved: bool) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("truncate public.tasks, public.projects cascade")
        conn.execute(
            "insert into public.projects (id, user_id) values (%s, %s), (%s, %s)", (ALICE, ALICE, BOB, BOB)
        )
        if interleaved:
            conn.execute(
                "insert into public.tasks (project_id, task_type, created_at)"
                " select case when n %% 2 = 0 then %s else %s end::uuid, 'render',"
                " now() + n * interval '1 microsecond' from generate_series(1, %s) n",
                (ALICE, BOB, first + second),
            )
        else:
            for owner, count, start in ((ALICE, first, "1 day"), (BOB, second, "0 days")):
                conn.execute(
                    "insert into public.tasks (project_id, task_type, created_at) select %s, 'render',"
                    " now() - %s::interval + n * interval '1 microsecond' from generate_series(1, %s) n",
                    (owner, start, count),
                )
        conn.execute("vacuum analyze public.tasks")


def pgbench(url: str, sql: str, seconds: float) -> float:
    parts = urlsplit(url)
    with tempfile.TemporaryDirectory() as directory:
        script = Path(directory) / "claim.sql"
        script.write_text(sql + ";\n")
        out = subprocess.run(
            ["pgbench", "-n", "-M", "prepared", "-c", "1", "-T", str(round(seconds)), "-f", str(script),
             "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
             "-U", parts.username or "postgres", parts.path.lstrip("/")],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    match = re.search(r"latency average = ([\d.]+) ms", out)
    assert match, out
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for round_no in range(1, args.rounds + 1):
        for url in args.urls:
            for name, sql in FORMS.items():
                refill(url, 200_000, 200_000, interleaved=True)
                print(
                    f"round {round_no} {urlsplit(url).path}  {name}: {pgbench(url, sql, args.seconds):.3f} ms"
                )
    for url in args.urls:
        refill(url, 200_000, 1_000, interleaved=False)
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            for name, sql in FORMS.items():
                sql = sql.replace(ALICE, BOB)  # the user behind the other's backlog
                for _ in range(8):
                    conn.execute(sql).fetchall()
                print(f"explain {urlsplit(url).path}  {name}: {explain_buffers(conn, sql, ())} buffers")


if __name__ == "__main__":
    main()
