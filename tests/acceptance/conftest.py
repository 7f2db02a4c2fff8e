"""The servers of the acceptance tests, and the credentials they accept.

Two runtimes serve one HTTP contract: ``taskclaim serve`` (``service``) and the Deno Edge Functions of
``supabase/functions`` (``edge``, under ``./dev edge``'s router). A test that takes ``server`` or ``http``
runs against both; one marked ``python_only`` is about what only the Python service does (coalescing,
``/metrics``, the dashboard, its own reaper, ...) and runs against it alone. Tests that take ``service``
are about the Python service only.

The JWKS server here stands in for Supabase Auth, a third-party service that cannot run on this
machine: it only serves the public half of a key pair the tests make, as Supabase serves its JWKS.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from taskclaim import migrations
from tests.edge import EdgeProcess
from tests.helpers import create_database, drop_database
from tests.processes import ServiceProcess, free_port

Server = ServiceProcess | EdgeProcess
RUNTIMES = ("python", "edge")

SERVICE_KEY = "test-service-role-key-" + "s" * 20
SECRET_KEY = "sb_secret_test_" + "k" * 24
JWT_SECRET = "test-jwt-secret-with-at-least-32-bytes!"
ES256_KID = "test-es256-key"


class Credentials:
    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self.es256_key = private_key

    @staticmethod
    def hs256(claims: dict[str, Any], secret: str = JWT_SECRET) -> str:
        return jwt.encode({"exp": int(time.time()) + 3600, **claims}, secret, algorithm="HS256")

    @staticmethod
    def user_jwt(user_id: uuid.UUID, **extra: Any) -> str:
        return Credentials.hs256(
            {"sub": str(user_id), "role": "authenticated", "aud": "authenticated", **extra}
        )

    def es256(self, claims: dict[str, Any], kid: str = ES256_KID) -> str:
        return jwt.encode(
            {"exp": int(time.time()) + 3600, **claims},
            self.es256_key,
            algorithm="ES256",
            headers={"kid": kid},
        )


@pytest.fixture(scope="session")
def db_url(pg_server_url: str) -> Iterator[str]:
    """The acceptance tests' own database: the session's service reaps in it every 0.5 s, which must
    not race the integration tests that reap by hand in theirs."""
    url = create_database(pg_server_url, "taskclaim_accept")
    migrations.migrate(url)
    yield url
    drop_database(url)


@pytest.fixture(scope="session", autouse=True)
def worker_environment() -> Iterator[None]:
    """The test process is a worker deployed with the service key in its environment, as the plan's
    workers are: the client's direct-RPC fallback recognises that key as the service's (any other token
    is looked up as a user's, and never widened to every user)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SUPABASE_SERVICE_ROLE_KEY", SERVICE_KEY)
        yield


@pytest.fixture(scope="session")
def credentials() -> Credentials:
    return Credentials(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="session")
def jwks_url(credentials: Credentials) -> Iterator[str]:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(credentials.es256_key.public_key()))
    document = json.dumps({"keys": [{**public, "kid": ES256_KID, "alg": "ES256", "use": "sig"}]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = document.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/auth/v1/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


def service_env(db_url: str, jwks_url: str, data_dir: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY,
        "SUPABASE_SECRET_KEYS": json.dumps({"default": SECRET_KEY}),
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        "SUPABASE_JWKS_URL": jwks_url,
        "TASKCLAIM_DATA_DIR": str(data_dir),
        "TASKCLAIM_REAP_INTERVAL": "0.5",
    }


@pytest.fixture(scope="session")
def service(db_url: str, jwks_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    directory = tmp_path_factory.mktemp("service")
    process = ServiceProcess(service_env(db_url, jwks_url, directory), directory / "serve.log").start()
    yield process
    assert process.stop() == 0, process.log()


@contextlib.contextmanager
def cron_reaper(db_url: str, interval: float) -> Iterator[None]:
    """What ``pg_cron`` does on Supabase for the Edge Functions (README, "Deploy on Supabase"): call
    ``taskclaim_reap`` every ``interval`` seconds. The embedded PostgreSQL has no pg_cron, so a thread of
    the test process runs the same statement."""
    stop = threading.Event()

    def run() -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            while not stop.wait(interval):
                conn.execute("select public.taskclaim_reap(1000)")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


@pytest.fixture(scope="session")
def edge(db_url: str, jwks_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    """The Edge Functions on the same database as ``service``, with the same keys and secrets."""
    directory = tmp_path_factory.mktemp("edge")
    env = {**service_env(db_url, jwks_url, directory), "SUPABASE_DB_URL": db_url}
    process = EdgeProcess(env, directory / "edge.log", free_port()).start()
    with cron_reaper(db_url, 0.5):
        yield process
    process.stop()
    assert "unhandled error" not in process.log(), process.log()


@pytest.fixture(scope="session", params=RUNTIMES)
def server(request: pytest.FixtureRequest) -> Server:
    """Each runtime of the contract in turn: the Python service, then the Edge Functions."""
    found: Server = request.getfixturevalue("service" if request.param == "python" else "edge")
    return found


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A ``python_only`` test is not collected for the Edge Functions (deselected, not skipped)."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_edge = callspec is not None and callspec.params.get("server") == "edge"
        (drop if on_edge and item.get_closest_marker("python_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def broken_db_url(pg_server_url: str) -> Iterator[str]:
    """A database whose service-side claim raises an unexpected error; the plan's RPC still works."""
    url = create_database(pg_server_url, "taskclaim_broken")
    migrations.migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "create or replace function public.taskclaim_claim_batch(p_worker_ids text[], p_user_id uuid,"
            " p_lease_seconds integer) returns table (ordinal integer, task_id uuid, params jsonb,"
            " task_type text, project_id uuid, worker_id text, attempt integer, lease_expires_at timestamptz)"
            " language plpgsql as $$ begin raise exception 'a bug in the claim'; end $$"
        )
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def broken_service(
    broken_db_url: str, jwks_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("broken")
    process = ServiceProcess(service_env(broken_db_url, jwks_url, directory), directory / "serve.log").start()
    yield process.url + "/functions/v1/claim-next-task"
    process.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
