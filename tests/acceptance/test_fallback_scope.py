"""The direct-RPC fallback keeps the token's scope: a user's token claims that user's tasks on every path,
and a token that names nobody gets no fallback, never the all-users claim."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from taskclaim import client as client_module
from taskclaim.client import ServiceUnavailable, TaskClient, get_oldest_queued_task_supabase
from tests.acceptance.conftest import JWT_SECRET, Credentials
from tests.acceptance.test_supabase_headless import closed_port_url
from tests.helpers import Conn, make_project, make_task, personal_token, status_counts, task


@pytest.fixture
def two_users(db: Conn) -> dict[str, Any]:
    """Bob's task is the oldest; Alice has one."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    bobs = make_task(db, make_project(db, bob))
    alices = make_task(db, make_project(db, alice))
    return {"alice": alice, "bob": bob, "alices": alices, "bobs": bobs}


def token_for(db: Conn, kind: str, user: uuid.UUID) -> str:
    return personal_token(db, user) if kind == "pat" else Credentials.user_jwt(user)


@pytest.mark.parametrize("kind", ["pat", "jwt"])
def test_a_users_token_on_the_fallback_claims_only_that_users_tasks(
    db: Conn, db_url: str, two_users: dict[str, Any], kind: str
) -> None:
    token = token_for(db, kind, two_users["alice"])
    with TaskClient(closed_port_url(), token, database_url=db_url, backoff=0.01, retries=0) as client:
        claimed = client.claim(worker_id="w")
        assert claimed is not None and claimed.task_id == str(two_users["alices"])
        assert client.last_path == "rpc"
        assert client.claim() is None and client.claim_many(5) == []
        client.complete(claimed, result={"ok": 1})
        assert client.counts()["totals"]["complete"] == 1  # Alice's counts, not everyone's
        assert client.counts()["totals"]["queued"] == 0
    assert task(db, two_users["bobs"])["status"] == "Queued"
    assert task(db, two_users["alices"])["status"] == "Complete"


def test_a_users_token_cannot_act_on_another_users_task_through_the_fallback(
    db: Conn, db_url: str, two_users: dict[str, Any]
) -> None:
    with TaskClient(closed_port_url(), None, database_url=db_url, retries=0) as service_client:
        bobs = service_client.claim(worker_id="bob-worker")
    assert bobs is not None and bobs.task_id == str(two_users["bobs"])
    token = personal_token(db, two_users["alice"])
    with TaskClient(closed_port_url(), token, database_url=db_url, retries=0) as client:
        with pytest.raises(client_module.ClientError) as caught:
            client.complete(bobs, result={"stolen": True})
        assert caught.value.status == 404
    assert task(db, two_users["bobs"])["status"] == "In Progress"


@pytest.mark.parametrize(
    "token",
    [
        "tcp_not-a-token-anyone-has",
        Credentials.hs256({"role": "authenticated"}),  # no sub
        "a.b.c",
    ],
)
def test_a_token_that_names_nobody_gets_no_fallback(
    db: Conn, db_url: str, two_users: dict[str, Any], token: str
) -> None:
    with TaskClient(closed_port_url(), token, database_url=db_url, retries=0) as client:
        with pytest.raises(ServiceUnavailable, match="cannot act for this token"):
            client.claim()
        with pytest.raises(ServiceUnavailable):
            client.claim_many(3)
    assert status_counts(db) == {"Queued": 2}


def test_with_the_jwt_secret_set_a_forged_service_jwt_gets_no_fallback(
    db: Conn, db_url: str, two_users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPABASE_JWT_SECRET", JWT_SECRET)
    forged = Credentials.hs256({"role": "service_role"}, secret="not-the-secret-" + "x" * 20)
    forged_client = TaskClient(closed_port_url(), forged, database_url=db_url, retries=0)
    with forged_client, pytest.raises(ServiceUnavailable, match="not valid"):
        forged_client.claim()
    genuine = Credentials.hs256({"role": "service_role"})
    with TaskClient(closed_port_url(), genuine, database_url=db_url, retries=0) as client:
        claimed = client.claim()
    assert claimed is not None and claimed.task_id == str(two_users["bobs"])


def test_user_id_narrows_the_fallback_and_must_agree_with_the_token(
    db: Conn, db_url: str, two_users: dict[str, Any]
) -> None:
    alice = str(two_users["alice"])
    with TaskClient(closed_port_url(), None, database_url=db_url, user_id=alice, retries=0) as client:
        claimed = client.claim()
        assert claimed is not None and claimed.task_id == str(two_users["alices"])
    bobs_token = personal_token(db, two_users["bob"])
    mismatched = TaskClient(closed_port_url(), bobs_token, database_url=db_url, user_id=alice, retries=0)
    with mismatched, pytest.raises(ServiceUnavailable, match="not user"):
        mismatched.claim()
    assert task(db, two_users["bobs"])["status"] == "Queued"


class PostgrestRpc:
    """The shape of supabase-py's ``client.rpc(name, params).execute().data``, answered by the real SQL
    function of that name (supabase-py and PostgREST are third-party services not run here)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.calls: list[str] = []

    def rpc(self, name: str, params: dict[str, Any]) -> PostgrestRpc:
        self.calls.append(name)
        arguments = sql.SQL(", ").join(
            sql.SQL("{} => {}").format(sql.Identifier(key), sql.Placeholder(key)) for key in params
        )
        statement = sql.SQL("select * from public.{}({})").format(sql.Identifier(name), arguments)
        self.data = [dict(r) for r in self.conn.execute(statement, params).fetchall()]
        return self

    def execute(self) -> PostgrestRpc:
        return self


def test_a_supabase_client_fallback_keeps_the_users_scope(db: Conn, two_users: dict[str, Any]) -> None:
    supabase = PostgrestRpc(db)
    token = personal_token(db, two_users["alice"])
    with TaskClient(closed_port_url(), token, supabase_client=supabase, retries=0) as client:
        client.database_url = None
        claimed = client.claim()
    assert claimed is not None and claimed.task_id == str(two_users["alices"])
    assert supabase.calls == ["taskclaim_token_user", "func_claim_user_task"]
    assert task(db, two_users["bobs"])["status"] == "Queued"


def test_the_drop_in_with_a_users_token_takes_only_that_users_tasks(
    db: Conn, db_url: str, two_users: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPABASE_ACCESS_TOKEN", personal_token(db, two_users["alice"]))
    monkeypatch.setenv("SUPABASE_EDGE_CLAIM_TASK_URL", closed_port_url())
    monkeypatch.setenv("DATABASE_URL", db_url)
    got = get_oldest_queued_task_supabase()
    assert got is not None and got["task_id"] == str(two_users["alices"])
    assert get_oldest_queued_task_supabase() is None
    assert task(db, two_users["bobs"])["status"] == "Queued"


def test_the_drop_in_never_raises(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SUPABASE_EDGE_CLAIM_TASK_URL", closed_port_url())
    monkeypatch.setenv("SUPABASE_ACCESS_TOKEN", "tcp_whatever")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SUPABASE_DB_URL", raising=False)
    assert get_oldest_queued_task_supabase() is None  # was: ServiceUnavailable
    assert "no task claimed" in caplog.text
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    assert get_oldest_queued_task_supabase() is None


def worker(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskclaim", "worker", "--exec", "cat", "--poll-interval", "0.2", *args],
        env={**__import__("os").environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_worker_on_the_fallback_with_a_users_token_drains_only_that_users_tasks(
    db: Conn, db_url: str, two_users: dict[str, Any]
) -> None:
    token = personal_token(db, two_users["alice"])
    done = worker(
        ["--url", closed_port_url(), "--token", token, "--exit-when-empty"], {"DATABASE_URL": db_url}
    )
    assert done.returncode == 0, done.stderr
    assert task(db, two_users["alices"])["status"] == "Complete"
    assert task(db, two_users["bobs"])["status"] == "Queued"


@pytest.mark.parametrize("flags", [["--exit-when-empty"], []])
def test_a_refused_token_stops_the_worker_at_once_with_one_line(
    db: Conn, http: Any, service: Any, flags: list[str]
) -> None:
    make_task(db, make_project(db))
    url = service.url + "/functions/v1/claim-next-task"
    done = worker(["--url", url, "--token", "tcp_revoked-or-never-made", *flags], {"DATABASE_URL": ""}, 30)
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("taskclaim: error: the service refused the token (403")
    )
    assert status_counts(db) == {"Queued": 1}


def test_exit_when_empty_exits_non_zero_when_nothing_could_be_asked(tmp_path: Path) -> None:
    done = worker(["--url", closed_port_url(), "--token", "x", "--exit-when-empty"], {"DATABASE_URL": ""})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("taskclaim: error: claim failed:")
