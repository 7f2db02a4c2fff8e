"""Run every benchmark step once and write the report.

python -m bench.run                       # the full run (about 30 minutes on 2 cores), BENCHMARKS.md
python -m bench.run --smoke --out F.md    # tiny sizes, seconds: proves the harness works
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.load import wrk_available
from bench.steps import Bench, Sizes, new_workdir

TARGETS = {
    "http_ratio_16": 0.60,
    "rpc_ratio_16": 0.90,
    "http_p99_ms_16": 10.0,
    "growth_ratio": 1.3,
    "sustained_ratio": 0.80,
}


def run(sizes: Sizes, log: Any = sys.stderr) -> dict[str, Any]:
    bench = Bench(sizes, new_workdir())
    bench.start()
    results: dict[str, Any] = {"ceiling": {}, "rpc": {}, "rpc_batch": {}, "http": {}}
    try:
        for n in sizes.concurrencies:
            results["ceiling"][n] = bench.ceiling(n)
            print(f"ceiling   c={n}: {results['ceiling'][n]}", file=log, flush=True)
        for n in sizes.concurrencies:
            results["rpc"][n] = bench.rpc(n)
            print(f"rpc       c={n}: {results['rpc'][n]}", file=log, flush=True)
        for n in sizes.concurrencies:
            results["rpc_batch"][n] = bench.rpc(n, batch=sizes.rpc_batch)
            print(f"rpc batch c={n}: {results['rpc_batch'][n]}", file=log, flush=True)
        with bench.service() as base:
            for n in sizes.concurrencies:
                results["http"][n] = bench.http(base, n)
                print(f"http      c={n}: {results['http'][n]}", file=log, flush=True)
            bench.reset(int(40_000 * max(sizes.seconds, 1)))
            results["cycle"] = bench.cycle(base, sizes.cycle_connections)
            print(f"cycle     c={sizes.cycle_connections}: {results['cycle']}", file=log, flush=True)
            results["sustained"] = bench.sustained(base, float(results["cycle"]["cycles_per_s"]))
            print(f"sustained: {results['sustained']}", file=log, flush=True)
        results["growth"] = bench.growth()
        print(f"growth: {results['growth']}", file=log, flush=True)
        with bench.connect() as conn:
            row = conn.execute("show server_version").fetchone()
            results["server_version"] = row[0] if row else "?"
    finally:
        bench.stop()
        shutil.rmtree(bench.workdir, ignore_errors=True)
    return results


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    memory = "?"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    wrk = "not installed (Python load generator)"
    if wrk_available():
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
        wrk = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "wrk"
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("psycopg", "psycopg-binary", "uvicorn", "starlette", "orjson")
    )
    return {
        "cpu": f"{os.cpu_count()} × {cpu}",
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "wrk": wrk,
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def verdicts(results: dict[str, Any], sizes: Sizes) -> dict[str, tuple[float, bool]]:
    at = 16 if 16 in sizes.concurrencies else max(sizes.concurrencies)
    ceiling = results["ceiling"][at]["claims_per_s"]
    growth = results["growth"]
    empty = growth[0]["latency_ms"]
    worst = growth[-1]["latency_ms"]
    minutes = results["sustained"]["per_minute"]
    return {
        "http_ratio_16": (_ratio(results["http"][at]["claims_per_s"], ceiling), False),
        "rpc_ratio_16": (_ratio(results["rpc"][at]["claims_per_s"], ceiling), False),
        "http_p99_ms_16": (float(results["http"][at]["p99_ms"]), True),
        "growth_ratio": (_ratio(worst, empty), True),
        "sustained_ratio": (_ratio(minutes[-1], minutes[0]), False),
    }


def report(results: dict[str, Any], sizes: Sizes, command: str, seconds: float) -> str:
    m = machine()
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `{command}` in {seconds / 60:.1f} minutes, all steps in one run against one",
        f"embedded PostgreSQL {results['server_version']} (the `pgserver` wheel, settings as shipped: fsync",
        "and synchronous commit on, autovacuum on). Claims are counted in the database (tasks that left",
        "the queue), not by the clients.",
        "",
        f"- machine: {m['cpu']}, {m['memory']}; {m['os']}",
        f"- Python {m['python']}; {m['packages']}; load generator: {m['wrk']}",
        "",
        "## Throughput by path",
        "",
        "| clients | ceiling: pgbench, claims/s | direct RPC (psycopg), claims/s | ratio "
        f"| direct RPC, {sizes.rpc_batch} per call, claims/s | ratio "
        "| HTTP, claims/s | ratio | HTTP p50 ms | HTTP p99 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in sizes.concurrencies:
        c = results["ceiling"][n]["claims_per_s"]
        r = results["rpc"][n]["claims_per_s"]
        b = results["rpc_batch"][n]["claims_per_s"]
        h = results["http"][n]
        lines.append(
            f"| {n} | {c:,.0f} | {r:,.0f} | {_ratio(r, c):.0%} | {b:,.0f} | {_ratio(b, c):.0%} | "
            f"{h['claims_per_s']:,.0f} | {_ratio(h['claims_per_s'], c):.0%} | {h['p50_ms']:.2f} | "
            f"{h['p99_ms']:.2f} |"
        )
    cyc = results["cycle"]
    lines += [
        "",
        f"Full cycle over HTTP (claim, then complete-task), {sizes.cycle_connections} connections: "
        f"**{cyc['cycles_per_s']:,.0f} tasks/s** ({cyc['completed']:,} completed in {cyc['seconds']:.1f} s; "
        f"request p50 {cyc['p50_ms']:.2f} ms, p99 {cyc['p99_ms']:.2f} ms).",
        "",
        "## Claim latency as the table grows",
        "",
        f"pgbench, one client, {sizes.growth_seconds:.0f} s each, after a CHECKPOINT; finished (`Complete`)",
        "and blocked tasks are all older than the ready ones. Buffers: `EXPLAIN (ANALYZE, BUFFERS)` of one",
        "claim, shared hits + reads. List pages: the buffers of one page of 50 of `list-tasks`, the first",
        "page and the page after it: newest first (the ready tasks) for the service key and for the user",
        "who owns them, and oldest first (through the finished ones) for the service key.",
        "",
        "| finished tasks | blocked tasks | buffers per claim | claims/s | mean latency ms | × empty "
        "| list page, service (first / next) | user | service, oldest first |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    empty = results["growth"][0]["latency_ms"]
    for g in results["growth"]:
        lines.append(
            f"| {g['finished']:,} | {g['blocked']:,} | {g['buffers']} | {g['claims_per_s']:,.0f} | "
            f"{g['latency_ms']:.3f} | "
            f"{_ratio(g['latency_ms'], empty):.2f} | "
            f"{_pages(g, 'service')} | {_pages(g, 'user')} | {_pages(g, 'oldest')} |"
        )
    s = results["sustained"]
    lines += [
        "",
        f"## Sustained: {sizes.sustained_minutes} × {sizes.minute_seconds:.0f} s of claim + complete",
        "",
        "| minute | " + " | ".join(str(i + 1) for i in range(len(s["per_minute"]))) + " |",
        "| --- | " + " | ".join("---:" for _ in s["per_minute"]) + " |",
        "| tasks/s | " + " | ".join(f"{v:,.0f}" for v in s["per_minute"]) + " |",
        "",
        f"At the end: {s['live_tuples']:,} live and {s['dead_tuples']:,} dead tuples in `tasks` "
        f"({s['size']} with indexes), {s['autovacuums']} autovacuum and {s['autoanalyzes']} autoanalyze runs "
        f"during the run, {s['queued_left']:,} tasks still queued.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "| --- | ---: | :---: |",
    ]
    at = 16 if 16 in sizes.concurrencies else max(sizes.concurrencies)
    names = {
        "http_ratio_16": (f"HTTP claims/s at {at} connections ≥ 60 % of the ceiling", "{:.0%}"),
        "rpc_ratio_16": (f"direct RPC claims/s at {at} ≥ 90 % of the ceiling", "{:.0%}"),
        "http_p99_ms_16": (f"HTTP p99 at {at} connections ≤ 10 ms", "{:.2f} ms"),
        "growth_ratio": ("claim latency at the largest table within 1.3× of empty", "{:.2f}×"),
        "sustained_ratio": ("last minute of the sustained run ≥ 80 % of the first", "{:.0%}"),
    }
    for key, (value, lower_is_better) in verdicts(results, sizes).items():
        label, fmt = names[key]
        met = value <= TARGETS[key] if lower_is_better else value >= TARGETS[key]
        lines.append(f"| {label} | {fmt.format(value)} | {'yes' if met else '**no**'} |")
    return "\n".join(lines) + "\n"


def _pages(row: dict[str, Any], scope: str) -> str:
    first = row.get(f"list_{scope}_first")
    return "" if first is None else f"{first} / {row[f'list_{scope}_next']}"


BEGIN, END = "<!-- results: begin -->", "<!-- results: end -->"


def write_report(path: Path, text: str) -> None:
    """Replace the generated part of ``path`` (between the markers), keeping the hand-written analysis."""
    block = f"{BEGIN}\n{text}{END}\n"
    if path.exists():
        current = path.read_text()
        if BEGIN in current and END in current:
            head, rest = current.split(BEGIN, 1)
            tail = rest.split(END, 1)[1].lstrip("\n")
            path.write_text(head + block + ("\n" + tail if tail else ""))
            return
    path.write_text(block)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, not minutes")
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    sizes = Sizes.smoke() if args.smoke else Sizes()
    started = time.monotonic()
    results = run(sizes)
    command = "python -m bench.run" + (" --smoke" if args.smoke else "")
    text = report(results, sizes, command, time.monotonic() - started)
    write_report(args.out, text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
