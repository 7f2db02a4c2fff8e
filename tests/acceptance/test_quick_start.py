"""The README's Quick start, run as written: its shell blocks, in order, in one shell, against ``./dev serve``
on a fresh data directory, twice in a row. Only the port is changed (a free one instead of 54321), and the
step the README asks of the reader ("stop ``./dev serve``") is done by the test between the blocks."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.processes import free_port

pytestmark = pytest.mark.slow


def quick_start_blocks(readme: str) -> list[str]:
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def clean_env(data_dir: Path) -> dict[str, str]:
    """A new user's shell: no database, keys or taskclaim settings of the test session."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SUPABASE_", "TASKCLAIM_")) and k not in ("DATABASE_URL", "VIRTUAL_ENV")
    }
    return {**env, "TASKCLAIM_DATA_DIR": str(data_dir)}


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, "./dev serve exited"
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("./dev serve did not become healthy")


def run_once(repo_root: Path, data_dir: Path, blocks: list[str], log: Path) -> str:
    port = free_port()
    env = clean_env(data_dir)
    with open(log, "ab") as out:
        serve = subprocess.Popen(
            ["./dev", "serve", "--port", str(port)], cwd=repo_root, env=env, stdout=out, stderr=out
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", serve)
        *with_service, fallback = [block.replace("54321", str(port)) for block in blocks]
        # (the service is this process's child, so the shell cannot wait for it: it waits for the port)
        stop = f"kill -TERM {serve.pid}\nwhile curl -s -o /dev/null 127.0.0.1:{port}; do sleep 0.1; done\n"
        script = "set -euo pipefail\n" + "".join(with_service) + stop + fallback
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=repo_root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one stream, in the order a terminal would show it
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout
        return done.stdout
    finally:
        if serve.poll() is None:
            serve.terminate()
            serve.wait(30)


def test_the_quick_start_works_as_written_twice_in_a_row(repo_root: Path, tmp_path: Path) -> None:
    blocks = quick_start_blocks((repo_root / "README.md").read_text())
    assert blocks[0].startswith("./dev serve"), "the first block starts the service; the test does that"
    for attempt in (1, 2):
        output = run_once(repo_root, tmp_path / "data", blocks[1:], tmp_path / "serve.log")
        claims = re.findall(r"^HTTP/1\.1 (\d+)", output, flags=re.MULTILINE)
        assert claims == ["200", "200"], (attempt, output)  # the service key's claim, then the user's
        assert '"params":{"frame":1}' in output and '"params":{"frame":2}' in output, output
        assert output.count("using the direct RPC until it is back") == 1, output  # said once, by the worker
        assert "Complete in" in output and "(via rpc)" in output, output
        finished = output.split("(via rpc)", 1)[1]
        assert re.search(r"Complete\s+render", finished), output  # task list --status Complete shows it
        assert "stopped" in finished, output  # db stop
