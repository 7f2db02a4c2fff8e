"""``taskclaim serve``: migrate, make sure a service key exists, run the app under uvicorn."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvicorn

from taskclaim import migrations
from taskclaim.app import create_app
from taskclaim.config import Settings, ensure_service_key, session_url
from taskclaim.database import database_url
from taskclaim.exceptions import ConfigError
from taskclaim.protocol import protocol_class

log = logging.getLogger("taskclaim.server")


def serve(settings: Settings, host: str, port: int, *, migrate: bool = True, workers: int = 1) -> None:
    """Migrate, then serve on ``host:port``: in this process, or in ``workers`` processes sharing the
    listening socket, each with its own pool, coalescers and LISTEN connection (see ``_supervise``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with database_url(settings) as url:
        if migrate:
            applied = migrations.migrate(session_url(settings, url))
            for migration in applied:
                log.info("applied migration %s_%s", migration.version, migration.name)
        settings, key_file = ensure_service_key(settings)
        listening = _bind(host, port)  # before the banner: a port in use fails here, with one line
        shown_host = f"[{host}]" if ":" in host else host
        base = f"http://{shown_host}:{port}"
        where = "the configured database" if settings.database_url else f"embedded, {settings.data_dir}"
        processes = "" if workers == 1 else f", {workers} processes"
        print(f"taskclaim serving on {base} (PostgreSQL: {where}{processes})", file=sys.stderr)
        if key_file is not None:
            key = settings.secret_keys[0]
            print(f"service key (kept in {key_file}): {key}", file=sys.stderr)
            print(
                f"try: curl -i -X POST {base}/functions/v1/claim-next-task -H 'Authorization: Bearer {key}'",
                file=sys.stderr,
            )
            print(f"dashboard: {base}/#token={key}", file=sys.stderr)
        if workers == 1:
            _serve_here(settings, url, listening)
        else:
            _supervise(settings, url, listening, workers)


def _config(app: Any, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level="info",
        access_log=False,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=max(1, round(settings.http_keepalive_seconds)),
        http=protocol_class(settings.http_keepalive_seconds, settings.http_read_seconds),
    )


def _serve_here(settings: Settings, url: str, listening: socket.socket) -> None:
    config = _config(create_app(settings, url), settings)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again with the
    # handlers found at start: ours turns SIGTERM into a normal exit so the embedded PostgreSQL
    # is released by the `with` in serve() instead of the process dying under it.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.Server(config).run(sockets=[listening])
    finally:
        listening.close()
        signal.signal(signal.SIGTERM, previous)


def _supervise(settings: Settings, url: str, listening: socket.socket, workers: int) -> None:
    """Fork ``workers`` processes that serve the one listening socket (the kernel spreads connections
    among them), start another when one dies, and on SIGTERM or SIGINT stop them all gracefully. Each
    child has its own pool, coalescers and LISTEN connection; the lease reaper already runs in one
    process at a time (an advisory lock), and /metrics adds up every process's figures (``metrics``)."""
    shared = Path(tempfile.mkdtemp(prefix="taskclaim-metrics-"))
    children: set[int] = set()
    stopping = False

    def start() -> None:
        pid = os.fork()
        if pid == 0:  # the child: serve until told to stop, then leave without unwinding the parent's state
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                uvicorn.Server(_config(create_app(settings, url, shared), settings)).run(sockets=[listening])
            except BaseException:
                log.exception("server process failed")
                code = 1
            finally:
                os._exit(code)
        children.add(pid)

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        for _ in range(workers):
            start()
        while children:
            pid, status = os.wait()
            children.discard(pid)
            (shared / f"{pid}.json").unlink(missing_ok=True)
            if not stopping:
                log.warning("server process %d exited (%s); starting another", pid, _how(status))
                time.sleep(0.5)  # a process that dies at once must not spin
                start()
    finally:
        listening.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        shutil.rmtree(shared, ignore_errors=True)


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)
