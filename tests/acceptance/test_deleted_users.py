"""A deleted user's tokens stop working and their projects and tasks go with them: through ``auth.users``
where it exists (every Supabase database), through ``taskclaim user delete`` where it does not."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from taskclaim import migrations
from tests.acceptance.conftest import Server, bearer, service_env
from tests.helpers import Conn, create_database, drop_database, make_project, make_task, personal_token
from tests.processes import ServiceProcess

CREATE = "/functions/v1/create-task"
CLAIM = "/functions/v1/claim-next-task"


@pytest.fixture
def supabase_like_url(pg_server_url: str) -> Iterator[str]:
    """A database where auth.users exists before taskclaim's migrations run, as on Supabase (only the
    column taskclaim refers to; GoTrue, which owns the rest, is a third-party service not run here)."""
    url = create_database(pg_server_url, "taskclaim_auth")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create schema auth; create table auth.users (id uuid primary key)")
    migrations.migrate(url)
    yield url
    drop_database(url)


def serve(url: str, jwks_url: str, tmp_path: Path) -> ServiceProcess:
    env = service_env(url, jwks_url, tmp_path) | {"TASKCLAIM_TOKEN_CACHE_SECONDS": "0"}
    return ServiceProcess(env, tmp_path / "serve.log").start()


def test_deleting_the_auth_user_ends_their_tokens_projects_and_tasks(
    supabase_like_url: str, jwks_url: str, tmp_path: Path
) -> None:
    user = uuid.uuid4()
    with psycopg.connect(supabase_like_url, autocommit=True, row_factory=dict_row) as db:
        db.execute("insert into auth.users (id) values (%s)", (user,))
        project = make_project(db, user)
        token = personal_token(db, user)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):  # a project needs a user that exists
            make_project(db, uuid.uuid4())
    service = serve(supabase_like_url, jwks_url, tmp_path)
    try:
        with httpx.Client(base_url=service.url, timeout=10, headers=bearer(token)) as http:
            body = {"project_id": str(project), "task_type": "render"}
            assert http.post(CREATE, json=body).status_code == 201
            with psycopg.connect(supabase_like_url, autocommit=True) as db:
                db.execute("delete from auth.users where id = %s", (user,))
            assert http.post(CREATE, json=body).status_code == 403
            assert http.post(CLAIM).status_code == 403
    finally:
        service.stop()
    with psycopg.connect(supabase_like_url, autocommit=True) as db:
        left = db.execute(
            "select (select count(*) from public.projects), (select count(*) from public.tasks),"
            " (select count(*) from public.user_api_token)"
        ).fetchone()
    assert left == (0, 0, 0)


def test_taskclaim_user_delete_does_the_same_on_plain_postgresql(
    db: Conn, db_url: str, server: Server
) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    make_task(db, make_project(db, user))
    kept = make_task(db, make_project(db, other))
    token = personal_token(db, user)
    done = subprocess.run(
        [sys.executable, "-m", "taskclaim", "user", "delete", str(user)],
        env={**__import__("os").environ, "DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"deleted user {user}: 1 project(s), 1 task(s), 1 token(s)"
    assert db.execute("select id from public.tasks").fetchall() == [{"id": kept}]
    # The service may hold the token's look-up for TASKCLAIM_TOKEN_CACHE_SECONDS (10 s here); a token it
    # never saw is refused at once.
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.post(CLAIM, headers=bearer(token)).status_code == 403
