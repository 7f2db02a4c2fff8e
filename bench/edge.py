"""The two runtimes of the HTTP contract side by side: claim-next-task through ``taskclaim serve`` and
through the Deno Edge Functions under local Deno (``./dev edge``'s router), at the same connections, on
the same embedded PostgreSQL, in one run (Python, Edge, Python, Edge). A figure to know, not a target.

python -m bench.edge [--seconds S] [--connections N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from typing import Any

from tests.edge import EdgeProcess
from tests.processes import free_port

from bench.steps import KEY, Bench, Sizes, new_workdir


def run(seconds: float, connections: int, rounds: int) -> dict[str, list[dict[str, Any]]]:
    bench = Bench(Sizes(seconds=seconds), new_workdir())
    bench.start()
    results: dict[str, list[dict[str, Any]]] = {"python": [], "edge": []}
    env = {
        "SUPABASE_DB_URL": bench.url,
        "SUPABASE_SERVICE_ROLE_KEY": KEY,
        "TASKCLAIM_POOL_MAX": "16",  # the Python service's default pool size, for a like-for-like run
    }
    edge = EdgeProcess(env, bench.workdir / "edge.log", free_port())
    try:
        edge.start()
        with bench.service() as base:
            for _ in range(rounds):
                for runtime, url in (("python", base), ("edge", edge.url)):
                    row = bench.http(url, connections)
                    results[runtime].append(row)
                    print(f"{runtime:6} c={connections}: {row}", file=sys.stderr, flush=True)
    finally:
        edge.stop()
        bench.stop()
        shutil.rmtree(bench.workdir, ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement; default %(default)s")
    parser.add_argument("--connections", type=int, default=16, help="default %(default)s")
    parser.add_argument("--rounds", type=int, default=2, help="alternations; default %(default)s")
    args = parser.parse_args()
    print(json.dumps(run(args.seconds, args.connections, args.rounds), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
