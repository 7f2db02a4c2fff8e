"""One HTTP step alone, a few times, with the server's CPU per request: for comparing two commits.

    python -m bench.compare --step cycle [--runs 2] [--seconds 8] [--connections 16] [--workers 1]
    python -m bench.compare --step http  ...
    python -m bench.compare --step latency [--runs 2] [--seconds 8]

``cycle`` is claim, then complete-task; ``http`` is claims alone; ``latency`` is one connection at a
time: pgbench's mean latency of ``func_claim_task`` with one client, then the p50 of claim-next-task over
HTTP with one connection, on the same table, alternated ``--runs`` times. Run it in a checkout of each commit,
one after the other, on one machine (for a commit older than this file, copy it into that checkout's
``bench/``). Prints tasks (or claims) per second, the request p99 and the server process's CPU time per
request, which varies less from run to run than throughput does on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

from bench.steps import Bench, Sizes, new_workdir


def server_cpu_seconds(port: str) -> float:
    """User + system CPU of the server process and its live children (serve --workers N)."""
    pid = subprocess.run(
        ["pgrep", "-f", f"taskclaim serve --port {port}"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0.0
    for process in [pid, *children]:
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--step", choices=("cycle", "http", "latency"), default="cycle")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="taskclaim serve --workers (default: 1)")
    args = parser.parse_args()
    bench = Bench(Sizes(seconds=args.seconds), new_workdir())
    bench.start()
    try:
        with bench.service(args.workers) as base:
            port = base.rsplit(":", 1)[1]
            for _ in range(args.runs):
                if args.step == "latency":
                    ceiling = bench.ceiling(1)
                    one = bench.http(base, 1)
                    p50, mean = float(one["p50_ms"]), ceiling["latency_ms"]
                    print(
                        f"pgbench mean {mean:.3f} ms, HTTP p50 {p50:.3f} ms"
                        f" (p99 {float(one['p99_ms']):.3f}): {p50 / mean:.2f}×",
                        flush=True,
                    )
                    continue
                if args.step == "cycle":
                    bench.reset(int(25_000 * args.seconds))
                    cpu = server_cpu_seconds(port)
                    figures = bench.cycle(base, args.connections)
                    rate, unit, requests = figures["cycles_per_s"], "tasks/s", 2 * int(figures["completed"])
                else:
                    cpu = server_cpu_seconds(port)  # http() refills the table first; the server idles then
                    figures = bench.http(base, args.connections)
                    rate, unit, requests = figures["claims_per_s"], "claims/s", int(figures["claimed"])
                used = server_cpu_seconds(port) - cpu
                print(
                    f"{float(rate):,.0f} {unit}, request p99 {float(figures['p99_ms']):.2f} ms,"
                    f" server CPU {used / max(requests, 1) * 1e6:.0f} µs/request",
                    flush=True,
                )
    finally:
        bench.stop()
        shutil.rmtree(bench.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
