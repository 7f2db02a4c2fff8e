"""The full-cycle step alone (claim, then complete-task, over HTTP at 16 connections), a few times.

    python -m bench.cycle [--runs 2] [--seconds 8]

For comparing two commits on one machine: run it in a checkout of each, one after the other (for a
commit older than this file, copy it into that checkout's ``bench/``). Prints tasks/s and request p99.
"""

from __future__ import annotations

import argparse
import shutil

from bench.steps import Bench, Sizes, new_workdir


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    bench = Bench(Sizes(seconds=args.seconds), new_workdir())
    bench.start()
    try:
        with bench.service() as base:
            for _ in range(args.runs):
                bench.reset(int(25_000 * args.seconds))
                figures = bench.cycle(base, args.connections)
                print(
                    f"{figures['cycles_per_s']:,.0f} tasks/s, request p99 {figures['p99_ms']:.2f} ms",
                    flush=True,
                )
    finally:
        bench.stop()
        shutil.rmtree(bench.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
