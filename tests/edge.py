"""The Deno Edge Functions of ``supabase/functions`` as a real process: for the contract tests, the
benchmark and ``./dev edge``.

``./dev edge [--port P] [--host H]`` serves every function at ``http://H:P/functions/v1/<name>`` under the
Deno of the ``deno`` wheel (a dev dependency), on ``DATABASE_URL`` / ``SUPABASE_DB_URL``, or on the embedded
PostgreSQL when neither is set; the database is migrated first, as ``taskclaim serve`` does. With no service
key configured it accepts the one ``taskclaim serve`` made and keeps in the data directory.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from deno import find_deno_bin

from taskclaim import migrations
from taskclaim.config import Settings, ensure_service_key
from taskclaim.database import database_url

FUNCTIONS = Path(__file__).resolve().parents[1] / "supabase" / "functions"
DEFAULT_PORT = 54321  # where `supabase functions serve` listens


def deno_command(*args: str) -> list[str]:
    return [find_deno_bin(), *args]


def serve_command(database_url: str, port: int, host: str = "127.0.0.1") -> list[str]:
    """Deno with only what the functions need: the network, the environment, their own files and, for a
    database reached through a Unix socket (the embedded one), that socket's directory."""
    socket_dir = parse_qs(urlsplit(database_url).query).get("host", [""])[0]
    readable = [str(FUNCTIONS)] + ([socket_dir] if socket_dir.startswith("/") else [])
    writable = [f"--allow-write={socket_dir}"] if socket_dir.startswith("/") else []
    return deno_command(
        "run",
        "--no-prompt",
        "--allow-net",
        "--allow-env",
        f"--allow-read={','.join(readable)}",
        *writable,
        str(FUNCTIONS / "_dev" / "serve.ts"),
        "--port",
        str(port),
        "--host",
        host,
    )


class EdgeProcess:
    """``supabase/functions`` served by Deno on ``port``, ready once its ``/health`` answers 200."""

    runtime = "edge"

    def __init__(self, env: Mapping[str, str], log_path: Path, port: int) -> None:
        self.port = port
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 120, *, healthy: bool = True) -> EdgeProcess:
        """Start, and return once ``/health`` answers: 200, or anything at all when not ``healthy``."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                serve_command(self.env["SUPABASE_DB_URL"], self.port),
                cwd=FUNCTIONS,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout  # the first start may fetch the npm packages
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"deno exited {self.process.returncode}:\n{self.log()}")
            try:
                status = httpx.get(self.url + "/health", timeout=5).status_code
                if status == 200 or not healthy:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the edge functions did not become healthy:\n{self.log()}")

    def stop(self, timeout: float = 20) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev edge", description=__doc__.split("\n\n")[1])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default: %(default)s")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    args = parser.parse_args(argv)
    settings, key_file = ensure_service_key(Settings.from_env())
    with database_url(settings) as url:
        migrations.migrate(url)
        if not settings.database_url:
            print(f"edge: on the embedded PostgreSQL at {url}", file=sys.stderr)
        env = {**os.environ, "SUPABASE_DB_URL": url}
        if key_file is not None:  # the key taskclaim serve made and keeps: one key for both runtimes
            env["SUPABASE_SECRET_KEYS"] = json.dumps({"default": settings.secret_keys[0]})
            print(f"edge: service key (kept in {key_file}): {settings.secret_keys[0]}", file=sys.stderr)
        process = subprocess.Popen(serve_command(url, args.port, args.host), cwd=FUNCTIONS, env=env)
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            return process.wait()


if __name__ == "__main__":
    sys.exit(main())
