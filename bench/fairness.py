"""Fairness between users (issue 13): round-robin service claims beside the plan's oldest-first.

    python -m bench.fairness [--backlog 100000] [--users 10000] [--queued 1000000]

1. **Starvation.** User A has ``--backlog`` ready tasks, user B 10 newer ones. 16 threads claim over HTTP
   (``claim-next-task``, the service key) until B's tasks are all claimed or 2,000 claims have been made,
   once against ``taskclaim serve`` with ``TASKCLAIM_CLAIM_ORDER=round-robin`` and once with the default
   order. Reported: the rank of B's last task among all claims, by the time PostgreSQL claimed it (the claims
   of one coalesced statement share that time, so the rank counts its whole statement).
2. **Cost.** ``--users`` users with ``--queued`` ready tasks in all (interleaved in time); the shared
   buffers one claim of one task reads (``EXPLAIN (ANALYZE, BUFFERS)``, after warm-up claims), for
   ``taskclaim_claim_round_robin`` without and with a cap of 5 in progress per user, and for the
   oldest-first ``taskclaim_claim_batch``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import uuid
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row
from tests.helpers import explain_buffers

from bench.steps import KEY, Bench, Sizes, new_workdir

ROUND_ROBIN = "select * from public.taskclaim_claim_round_robin(array['bench'], %s, 300)"
CAPPED = "select * from public.taskclaim_claim_round_robin(array['bench'], %s, 300, 5)"
OLDEST = "select * from public.taskclaim_claim_batch(array['bench'], null, 300)"


def starvation(bench: Bench, backlog: int, order: str) -> dict[str, Any]:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    with bench.connect() as conn:
        conn.execute("truncate tasks")
        for user, count in ((alice, backlog), (bob, 10)):
            project = conn.execute(
                "insert into projects (user_id) values (%s) returning id", (user,)
            ).fetchone()
            assert project is not None
            conn.execute(
                "insert into tasks (project_id, task_type, params, created_at)"
                " select %s, 'bench', '{}', now() + n * interval '1 microsecond'"
                " from generate_series(1, %s) n",
                (project[0], count),
            )
        conn.execute("vacuum analyze tasks")
    claims = 0
    lock = threading.Lock()

    def bobs_left(conn: Any) -> int:
        row = conn.execute(
            "select count(*) from tasks where user_id = %s and status = 'Queued'", (bob,)
        ).fetchone()
        return int(row[0])

    def claimer() -> None:
        nonlocal claims
        with (
            httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http,
            bench.connect() as conn,
        ):
            while True:
                with lock:
                    if claims >= 2000:
                        return
                    claims += 1
                if http.post(base + "/functions/v1/claim-next-task", json={}).status_code != 200:
                    return
                if claims % 16 == 0 and bobs_left(conn) == 0:
                    return

    env = {"TASKCLAIM_CLAIM_ORDER": order, "TASKCLAIM_REAP_INTERVAL": "0"}
    with bench.service(env=env) as base:
        threads = [threading.Thread(target=claimer) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
    with bench.connect() as conn:
        row = conn.execute(
            "select count(*) filter (where user_id = %s) as bobs,"
            " (select count(*) from tasks t2 where t2.status = 'In Progress' and t2.generation_started_at <="
            "   (select max(generation_started_at) from tasks where user_id = %s and status = 'In Progress'))"
            "   as rank, count(*) as claimed"
            " from tasks where status = 'In Progress'",
            (bob, bob),
        ).fetchone()
    assert row is not None
    bobs, rank, claimed = int(row[0]), int(row[1]), int(row[2])
    return {
        "order": order,
        "claims": claimed,
        "bobs_claimed": bobs,
        "rank_of_bobs_last": rank if bobs == 10 else None,
    }


def cost(bench: Bench, users: int, queued: int) -> dict[str, Any]:
    with psycopg.connect(bench.url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("truncate tasks, projects cascade")
        conn.execute(
            "insert into projects (user_id) select gen_random_uuid() from generate_series(1, %s)", (users,)
        )
        conn.execute(
            "insert into tasks (project_id, task_type, params, created_at)"
            " select p.id, 'bench', '{}', now() + (n * %s + p.rank) * interval '1 microsecond'"
            " from (select id, row_number() over () as rank from projects) p, generate_series(1, %s) n",
            (users, queued // users),
        )
        conn.execute("vacuum analyze tasks")
        cursor: Any = None
        for _ in range(50):  # warm-up: plans cached, the heads of the indexes read
            for statement in (ROUND_ROBIN, CAPPED):
                rows = conn.execute(statement.replace("*", "user_id"), (cursor,)).fetchall()
                cursor = rows[-1]["user_id"] if rows else None
            conn.execute(OLDEST).fetchall()
        round_robin = explain_buffers(conn, ROUND_ROBIN, (cursor,))
        capped = explain_buffers(conn, CAPPED, (cursor,))
        oldest = explain_buffers(conn, OLDEST, ())
        total = conn.execute("select count(*) as n from tasks where status = 'Queued'").fetchone()
    return {
        "users": users,
        "queued": int(total["n"]) if total else 0,
        "round_robin_buffers": round_robin,
        "capped_buffers": capped,
        "oldest_buffers": oldest,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--queued", type=int, default=1_000_000)
    args = parser.parse_args()
    bench = Bench(Sizes(), new_workdir())
    bench.start()
    try:
        results = [starvation(bench, args.backlog, order) for order in ("round-robin", "oldest")]
        results.append(cost(bench, args.users, args.queued))
    finally:
        bench.stop()
    for result in results:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
