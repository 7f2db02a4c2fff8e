"""The live service against its own OpenAPI document, by the pinned Schemathesis: no server error and no
answer the document does not describe, for the service key and for a user's token.

The service here allows long polls of at most 0.5 s (``TASKCLAIM_MAX_WAIT_SECONDS``, which the document
states), so that generated long polls do not make the run long.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from taskclaim import migrations
from tests.acceptance.conftest import SERVICE_KEY, service_env
from tests.helpers import create_database, drop_database, make_project, make_tasks, personal_token
from tests.processes import ServiceProcess

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "ignored_auth",
        "unsupported_method",
    ]
)


@pytest.fixture(scope="module")
def conformance(
    pg_server_url: str, jwks_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcess, str]]:
    url = create_database(pg_server_url, "taskclaim_openapi")
    migrations.migrate(url)
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        user = uuid.uuid4()
        make_tasks(conn, make_project(conn, user), 200)
        token = personal_token(conn, user)
    directory = tmp_path_factory.mktemp("openapi")
    env = service_env(url, jwks_url, directory) | {"TASKCLAIM_MAX_WAIT_SECONDS": "0.5"}
    process = ServiceProcess(env, directory / "serve.log").start()
    yield process, token
    process.stop()
    drop_database(url)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("who", ["service key", "user token"])
def test_every_answer_matches_the_document(
    conformance: tuple[ServiceProcess, str], who: str, tmp_path: Path
) -> None:
    service, user_token = conformance
    token = SERVICE_KEY if who == "service key" else user_token
    schemathesis = Path(sys.executable).with_name("schemathesis")
    run = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{service.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            CHECKS,
            "--max-examples",
            "30",
            "--seed",
            "20261201",
            "--generation-database",
            "none",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout.splitlines()[-1]
