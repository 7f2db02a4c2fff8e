"""``taskclaim serve``: migrate, make sure a service key exists, run the app under uvicorn."""

from __future__ import annotations

import logging
import signal
import socket
import sys

import uvicorn

from taskclaim import migrations
from taskclaim.app import create_app
from taskclaim.config import Settings, ensure_service_key
from taskclaim.database import database_url
from taskclaim.exceptions import ConfigError
from taskclaim.protocol import protocol_class

log = logging.getLogger("taskclaim.server")


def serve(settings: Settings, host: str, port: int, *, migrate: bool = True) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with database_url(settings) as url:
        if migrate:
            applied = migrations.migrate(url)
            for migration in applied:
                log.info("applied migration %s_%s", migration.version, migration.name)
        settings, key_file = ensure_service_key(settings)
        app = create_app(settings, url)
        listening = _bind(host, port)  # before the banner: a port in use fails here, with one line
        shown_host = f"[{host}]" if ":" in host else host
        base = f"http://{shown_host}:{port}"
        where = "the configured database" if settings.database_url else f"embedded, {settings.data_dir}"
        print(f"taskclaim serving on {base} (PostgreSQL: {where})", file=sys.stderr)
        if key_file is not None:
            key = settings.secret_keys[0]
            print(f"service key (kept in {key_file}): {key}", file=sys.stderr)
            print(
                f"try: curl -i -X POST {base}/functions/v1/claim-next-task -H 'Authorization: Bearer {key}'",
                file=sys.stderr,
            )
            print(f"dashboard: {base}/#token={key}", file=sys.stderr)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="info",
            access_log=False,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=10,
            timeout_keep_alive=max(1, round(settings.http_keepalive_seconds)),
            http=protocol_class(settings.http_keepalive_seconds, settings.http_read_seconds),
        )
        # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again with the
        # handlers found at start: ours turns SIGTERM into a normal exit so the embedded PostgreSQL
        # is released by the `with` above instead of the process dying under it.
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            uvicorn.Server(config).run(sockets=[listening])
        finally:
            listening.close()
            signal.signal(signal.SIGTERM, previous)


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
