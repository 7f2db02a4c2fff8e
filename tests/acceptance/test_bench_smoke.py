"""The benchmark harness at tiny sizes, so it never rots. It asserts that every step produced figures,
nothing about speed: speed lives in BENCHMARKS.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_every_benchmark_step_produces_figures(tmp_path: Path, repo_root: Path) -> None:
    out, raw = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"
    out.write_text(
        "# kept\n\n<!-- results: begin -->\nSTALE FIGURES\n<!-- results: end -->\n\nanalysis kept\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out), "--json", str(raw)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(raw.read_text())
    for step in ("ceiling", "rpc", "rpc_batch", "http"):
        assert figures[step], step
        for concurrency, row in figures[step].items():
            assert row["claims_per_s"] > 0, (step, concurrency)
            assert row.get("claimed", 1) > 0, (step, concurrency)
    assert figures["cycle"]["completed"] > 0
    assert len(figures["sustained"]["per_minute"]) == 2
    assert all(rate > 0 for rate in figures["sustained"]["per_minute"])
    assert [(g["finished"], g["blocked"]) for g in figures["growth"]] == [
        (0, 0),
        (0, 500),
        (2000, 0),
        (2000, 500),
    ]
    assert all(g["latency_ms"] > 0 and g["buffers"] > 0 for g in figures["growth"])
    pages = [g for g in figures["growth"] if not g["blocked"]]
    assert all(
        g[f"list_{shape}_{page}"] > 0
        for g in pages
        for shape in ("service", "user", "oldest")
        for page in ("first", "next")
    )
    text = out.read_text()
    assert text.startswith("# kept\n") and text.rstrip().endswith("analysis kept")  # the analysis survives
    assert "STALE FIGURES" not in text and "## Targets" in text


@pytest.mark.slow
def test_the_edge_benchmark_measures_both_runtimes(repo_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.edge", "--seconds", "1", "--rounds", "1", "--connections", "2"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    for runtime in ("python", "edge"):
        [row] = figures[runtime]
        assert row["claimed"] > 0 and row["non_2xx"] == 0, (runtime, row)


@pytest.mark.slow
def test_the_drain_benchmark_drains_with_the_worker_and_pgbench(repo_root: Path) -> None:
    """pgqueuer is the bench extra's; without it the drain still runs taskclaim's rows and the ceiling."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.drain", "--tasks", "300", "--concurrency", "2", "--pgqueuer-batch", ""],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [
        line.split("|")[1:-1]
        for line in result.stdout.splitlines()
        if line.startswith("| ") and "---" not in line
    ]
    by_name = {cells[0].strip(): float(cells[2].replace(",", "")) for cells in rows[1:]}
    assert by_name["taskclaim over HTTP"] > 0 and by_name["pgbench claim + complete (no HTTP)"] > 0, by_name


@pytest.mark.slow
def test_the_idle_benchmark_counts_transactions_of_idle_long_polls(repo_root: Path) -> None:
    command = ["--workers", "3", "--users", "3", "--wait", "1", "--seconds", "2", "--warmup", "1"]
    result = subprocess.run(
        [sys.executable, "-m", "bench.idle", *command],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["errors"] == {} and figures["transactions_per_s"] > 0, figures


@pytest.mark.slow
@pytest.mark.pgbouncer
def test_the_pooler_benchmark_claims_and_wakes_up_direct_and_through_pgbouncer(repo_root: Path) -> None:
    command = ["--seconds", "1", "--runs", "1", "--tasks", "20", "--waiters", "2"]
    result = subprocess.run(
        [sys.executable, "-m", "bench.pooler", *command],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines()[2:]]
    assert [cells[0].strip() for cells in rows] == ["direct", "PgBouncer"]
    for cells in rows:
        assert float(cells[1].replace(",", "")) > 0 and float(cells[4]) < 1000, cells


@pytest.mark.slow
def test_the_fairness_benchmark_serves_the_small_user_in_round_robin_order(repo_root: Path) -> None:
    command = ["--backlog", "300", "--users", "20", "--queued", "400"]
    result = subprocess.run(
        [sys.executable, "-m", "bench.fairness", *command],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    round_robin, oldest, cost = (json.loads(line) for line in result.stdout.strip().splitlines()[-3:])
    assert round_robin["bobs_claimed"] == 10 and round_robin["rank_of_bobs_last"] <= 40, round_robin
    assert (oldest["rank_of_bobs_last"] or 10_000) > 300, oldest  # after the whole backlog of 300
    assert cost["round_robin_buffers"] > 0 and cost["oldest_buffers"] > 0, cost
