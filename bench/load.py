"""HTTP load: wrk with a Lua script when wrk is installed, else a small asyncio generator.

Both answer the same dict: requests, seconds, p50_ms, p99_ms, non_2xx, tool. The Python generator costs far
more CPU than wrk (it competes with the server on a small machine); it exists so that the harness's smoke
test runs on a machine with only Python, and the report names the tool that produced each figure.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).parent


def wrk_available() -> bool:
    """wrk is used when installed, unless TASKCLAIM_BENCH_LOADGEN=python asks for the fallback."""
    return os.environ.get("TASKCLAIM_BENCH_LOADGEN") != "python" and shutil.which("wrk") is not None


def run_wrk(url: str, key: str, connections: int, seconds: float, script: str) -> dict[str, float | str]:
    threads = max(1, min(2, connections))
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(HERE / script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TASKCLAIM_BENCH_KEY": key},
    )
    line = next(li for li in result.stdout.splitlines() if li.startswith("{"))
    data = json.loads(line)
    return {
        "requests": data["requests"],
        "seconds": data["duration_us"] / 1e6,
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "non_2xx": data["non_2xx"] + data["socket_errors"],
        "tool": "wrk",
    }


def _request(host: str, path: str, key: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(
    host: str, port: int, path: str, key: str, deadline: float, latencies: list[float], cycle: bool
) -> int:
    """Keep-alive POSTs until the deadline; with ``cycle``, each claimed task is completed next."""
    reader, writer = await asyncio.open_connection(host, port)
    complete_path = path.rsplit("/", 1)[0] + "/complete-task"
    claim = _request(host, path, key, b"{}")
    bad = 0
    pending: bytes | None = None
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            writer.write(_request(host, complete_path, key, pending) if pending else claim)
            was_claim, pending = pending is None, None
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            latencies.append(time.perf_counter() - started)
            bad += not 200 <= status < 300
            if cycle and was_claim and status == 200:
                task = json.loads(body)
                holder = {k: task[k] for k in ("task_id", "worker_id", "attempt")}
                pending = json.dumps(holder).encode()
    finally:
        writer.close()
    return bad


def run_python(url: str, key: str, connections: int, seconds: float, cycle: bool) -> dict[str, float | str]:
    parts = urlsplit(url)
    latencies: list[float] = []

    async def main() -> int:
        deadline = time.monotonic() + seconds
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        results = await asyncio.gather(
            *(_client(host, port, parts.path, key, deadline, latencies, cycle) for _ in range(connections))
        )
        return sum(results)

    started = time.monotonic()
    bad = asyncio.run(main())
    elapsed = time.monotonic() - started
    latencies.sort()

    def pick(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "p50_ms": pick(0.50) if latencies else 0.0,
        "p99_ms": pick(0.99) if latencies else 0.0,
        "non_2xx": bad,
        "tool": "python",
    }


def http_load(
    url: str, key: str, connections: int, seconds: float, script: str = "claim.lua"
) -> dict[str, float | str]:
    if wrk_available():
        return run_wrk(url, key, connections, seconds, script)
    return run_python(url, key, connections, seconds, cycle=script == "cycle.lua")
