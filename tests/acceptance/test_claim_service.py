"""``POST /functions/v1/claim-next-task`` on a real ``taskclaim serve``: the plan's §6 matrix and more."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from taskclaim.tokens import new_token, token_hash
from tests.acceptance.conftest import SECRET_KEY, SERVICE_KEY, Credentials, Server, bearer
from tests.helpers import (
    Conn,
    make_project,
    make_task,
    make_tasks,
    metric,
    personal_token,
    status_counts,
    task,
    wait_until,
)
from tests.processes import ServiceProcess

CLAIM = "/functions/v1/claim-next-task"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.edge
def test_no_tasks_gives_204_with_no_body(db: Conn, http: httpx.Client) -> None:
    user = uuid.uuid4()
    response = http.post(CLAIM, json={}, headers=bearer(personal_token(db, user)))
    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.edge
def test_one_queued_task_of_the_same_user_is_claimed(db: Conn, http: httpx.Client) -> None:
    user = uuid.uuid4()
    project = make_project(db, user)
    task_id = make_task(db, project, task_type="render", params={"frame": 7})
    response = http.post(CLAIM, json={}, headers=bearer(personal_token(db, user)))
    assert response.status_code == 200
    body = response.json()
    assert body["task_id"] == str(task_id)
    assert body["params"] == {"frame": 7}
    assert body["task_type"] == "render"
    assert body["project_id"] == str(project)
    row = task(db, task_id)
    assert row["status"] == "In Progress"
    assert row["worker_id"] == body["worker_id"]
    assert row["worker_id"]


@pytest.mark.edge
def test_another_users_task_gives_204(db: Conn, http: httpx.Client) -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    task_id = make_task(db, make_project(db, owner))
    response = http.post(CLAIM, headers=bearer(personal_token(db, other)))
    assert response.status_code == 204
    assert task(db, task_id)["status"] == "Queued"


@pytest.mark.edge
@pytest.mark.parametrize("key", [SERVICE_KEY, SECRET_KEY])
def test_service_key_claims_the_oldest_task_of_any_user(db: Conn, http: httpx.Client, key: str) -> None:
    a, b = make_project(db), make_project(db)
    make_task(db, a, created_at=T0 + timedelta(seconds=2))
    oldest = make_task(db, b, created_at=T0)
    make_task(db, a, created_at=T0 + timedelta(seconds=1))
    response = http.post(CLAIM, json={"worker_id": "gpu-1"}, headers=bearer(key))
    assert response.status_code == 200
    assert response.json()["task_id"] == str(oldest)
    assert task(db, oldest)["worker_id"] == "gpu-1"


@pytest.mark.edge
def test_two_concurrent_workers_with_one_users_token_get_distinct_tasks(
    db: Conn, http: httpx.Client, server: Server
) -> None:
    user = uuid.uuid4()
    project = make_project(db, user)
    make_tasks(db, project, 2)
    token = personal_token(db, user)
    results: list[httpx.Response] = []
    barrier = threading.Barrier(2)

    def claim() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            barrier.wait()
            results.append(client.post(CLAIM, json={}, headers=bearer(token)))

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [200, 200]
    assert len({r.json()["task_id"] for r in results}) == 2


@pytest.mark.edge
@pytest.mark.slow
def test_thirty_two_clients_claim_five_thousand_tasks_exactly_once(db: Conn, server: Server) -> None:
    make_tasks(db, make_project(db), 5000)
    claimed: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    before = coalescing(server) if server.runtime == "python" else (0.0, 0.0)

    def client(index: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while True:
                response = http.post(CLAIM, json={"worker_id": f"c{index}"}, headers=bearer(SERVICE_KEY))
                if response.status_code == 204:
                    return
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                    return
                with lock:
                    claimed.append(response.json()["task_id"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert failures == []
    assert len(claimed) == 5000
    assert len(set(claimed)) == 5000
    assert status_counts(db) == {"In Progress": 5000}
    if server.runtime == "edge":
        return  # the Edge Functions do not coalesce (each request is its own statement)
    statements, claims = (after - earlier for after, earlier in zip(coalescing(server), before, strict=True))
    assert claims >= 5000 + 32  # every claim went through the coalescer (the last 32 found nothing)
    assert statements < claims  # and concurrent claims really shared statements


def coalescing(service: Server, kind: str = "claim") -> tuple[float, float]:
    """(statements sent, calls they carried) from the service's metrics, for claims or completions."""
    text = httpx.get(service.url + "/metrics", timeout=10).text
    values = dict(line.split(" ") for line in text.splitlines() if line.startswith("taskclaim_"))
    if kind == "claim":
        return float(values["taskclaim_claim_statements_total"]), float(
            values["taskclaim_claims_coalesced_total"]
        )
    return float(values["taskclaim_complete_statements_total"]), float(
        values["taskclaim_completions_coalesced_total"]
    )


@pytest.mark.slow
def test_concurrent_completions_share_statements_and_each_gets_its_answer(
    db: Conn, service: ServiceProcess
) -> None:
    make_tasks(db, make_project(db), 2000)
    statuses: list[int] = []
    lock = threading.Lock()
    before = coalescing(service, "complete")

    def client(index: int) -> None:
        with httpx.Client(base_url=service.url, timeout=30) as http:
            while True:
                claimed = http.post(CLAIM, json={"worker_id": f"c{index}"}, headers=bearer(SERVICE_KEY))
                if claimed.status_code == 204:
                    return
                held = {k: claimed.json()[k] for k in ("task_id", "worker_id", "attempt")}
                stale = {**held, "attempt": held["attempt"] + 1}  # rides in the same batches, alone refused
                for body, expected in ((stale, 409), ({**held, "result": {"by": index}}, 200)):
                    answer = http.post("/functions/v1/complete-task", json=body, headers=bearer(SERVICE_KEY))
                    with lock:
                        statuses.append(answer.status_code if answer.status_code != expected else 0)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert set(statuses) == {0} and len(statuses) == 4000  # every answer as expected
    assert status_counts(db) == {"Complete": 2000}
    results = db.execute("select count(*) as n from tasks where result ? 'by'").fetchone()
    assert results is not None and results["n"] == 2000
    statements, completions = (
        after - earlier for after, earlier in zip(coalescing(service, "complete"), before, strict=True)
    )
    assert completions == 4000
    assert statements < completions  # concurrent completions really shared statements


# -- auth ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}, {"Authorization": "Token x"}],
    ids=["none", "basic", "bearer-nothing", "other-scheme"],
)
def test_missing_bearer_token_gives_401(db: Conn, http: httpx.Client, headers: dict[str, str]) -> None:
    make_task(db, make_project(db))
    response = http.post(CLAIM, json={}, headers=headers)
    assert response.status_code == 401
    assert "error" in response.json()
    assert status_counts(db) == {"Queued": 1}


def test_unknown_revoked_and_expired_personal_tokens_give_403(db: Conn, http: httpx.Client) -> None:
    user = uuid.uuid4()
    make_task(db, make_project(db, user))
    revoked = personal_token(db, user)
    db.execute(
        "update public.user_api_token set revoked_at = now() where jti_hash = %s", (token_hash(revoked),)
    )
    expired = personal_token(db, user, expires_at=datetime.now(UTC) - timedelta(minutes=1))
    for token in (new_token(), revoked, expired, "not-a-token"):
        response = http.post(CLAIM, json={}, headers=bearer(token))
        assert response.status_code == 403, token
        assert response.json()["error"]
    assert status_counts(db) == {"Queued": 1}


@pytest.mark.parametrize(
    "change",
    [
        "update public.user_api_token set revoked_at = now() where jti_hash = %s",
        "update public.user_api_token set expires_at = now() - interval '1 second' where jti_hash = %s",
        "delete from public.user_api_token where jti_hash = %s",
    ],
)
@pytest.mark.python_only  # the Edge Functions keep TASKCLAIM_TOKEN_CACHE_SECONDS (10 s) for a token
def test_a_token_revoked_after_use_is_refused_at_once(
    db: Conn, http: httpx.Client, server: Server, change: str
) -> None:
    """The service caches a token's look-up (for minutes while its notifications arrive), but any change to
    the token's row notifies it: the next request after a revocation is refused, not one 10 s later."""
    wait_until(lambda: metric(server.url, "taskclaim_notifications_arriving") == 1, "a probe")
    user = uuid.uuid4()
    make_task(db, make_project(db, user))
    token = personal_token(db, user)
    assert http.post(CLAIM, json={}, headers=bearer(token)).status_code == 200  # looked up and cached
    db.execute(change, (token_hash(token),))
    wait_until(lambda: http.post(CLAIM, json={}, headers=bearer(token)).status_code == 403, "refused", 2.0)


def test_forged_and_expired_jwts_give_403_and_claim_nothing(
    db: Conn, http: httpx.Client, credentials: Credentials
) -> None:
    make_task(db, make_project(db))
    header_none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"  # {"alg":"none","typ":"JWT"}
    payload = "eyJyb2xlIjoic2VydmljZV9yb2xlIiwiZXhwIjo0MTAyNDQ0ODAwfQ"  # service_role, exp 2100
    forged = [
        Credentials.hs256({"role": "service_role"}, secret="the-wrong-secret-but-long-enough-32b"),
        f"{header_none}.{payload}.",
        Credentials.hs256({"role": "service_role", "exp": int(datetime.now(UTC).timestamp()) - 60}),
        Credentials.hs256({"sub": str(uuid.uuid4())}, secret="x" * 40),
        credentials.es256({"role": "service_role"}, kid="unknown-kid"),
        Credentials.hs256({"role": "anon"}),  # a valid anon key: no user, not the service
    ]
    for token in forged:
        response = http.post(CLAIM, json={}, headers=bearer(token))
        assert response.status_code == 403, token
        assert response.json()["error"]
    assert status_counts(db) == {"Queued": 1}


def test_verified_hs256_service_role_jwt_is_the_service(db: Conn, http: httpx.Client) -> None:
    task_id = make_task(db, make_project(db))
    token = Credentials.hs256({"iss": "supabase", "ref": "local", "role": "service_role"})
    response = http.post(CLAIM, headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["task_id"] == str(task_id)


def test_valid_user_jwt_claims_only_that_users_tasks(db: Conn, http: httpx.Client) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    make_task(db, make_project(db, bob), created_at=T0)
    alices = make_task(db, make_project(db, alice), created_at=T0 + timedelta(seconds=1))
    headers = bearer(Credentials.user_jwt(alice))
    first = http.post(CLAIM, headers=headers)
    assert first.status_code == 200
    assert first.json()["task_id"] == str(alices)
    assert http.post(CLAIM, headers=headers).status_code == 204


def test_es256_jwt_checked_against_the_jwks_claims_that_users_tasks(
    db: Conn, http: httpx.Client, credentials: Credentials
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    make_task(db, make_project(db, bob), created_at=T0)
    alices = make_task(db, make_project(db, alice), created_at=T0 + timedelta(seconds=1))
    token = credentials.es256({"sub": str(alice), "role": "authenticated", "aud": "authenticated"})
    first = http.post(CLAIM, headers=bearer(token))
    assert first.status_code == 200
    assert first.json()["task_id"] == str(alices)
    assert http.post(CLAIM, headers=bearer(token)).status_code == 204


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (b'"a string"', 400),
        (b'{"worker_id": 5}', 400),
        (b'{"lease_seconds": 0}', 400),
        (b'{"claim_id": "nope"}', 400),
        (b"x" * 1_000_000, 413),
    ],
    ids=["malformed", "array", "string", "worker-id-type", "lease", "claim-id", "1MB"],
)
def test_bad_bodies_are_refused_and_claim_nothing(
    db: Conn, http: httpx.Client, content: bytes, status: int
) -> None:
    make_task(db, make_project(db))
    response = http.post(
        CLAIM, content=content, headers={**bearer(SERVICE_KEY), "Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert response.json()["error"]
    assert status_counts(db) == {"Queued": 1}


def test_empty_or_absent_body_is_accepted(db: Conn, http: httpx.Client) -> None:
    project = make_project(db)
    make_tasks(db, project, 2)
    assert http.post(CLAIM, content=b"", headers=bearer(SERVICE_KEY)).status_code == 200
    assert http.post(CLAIM, headers=bearer(SERVICE_KEY)).status_code == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_give_405(http: httpx.Client, method: str) -> None:
    response = http.request(method, CLAIM, headers=bearer(SERVICE_KEY))
    assert response.status_code == 405
    assert response.json()["error"]


def test_options_is_the_cors_preflight_without_auth(http: httpx.Client) -> None:
    response = http.options(CLAIM, headers={"Origin": "https://example.org"})
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == "*"
    assert (
        response.headers["access-control-allow-headers"]
        == "authorization, x-client-info, apikey, content-type"
    )


def test_unknown_path_is_a_json_404(http: httpx.Client) -> None:
    response = http.post("/functions/v1/nothing-here", headers=bearer(SERVICE_KEY))
    assert response.status_code == 404
    assert response.json()["error"]


@pytest.mark.python_only
def test_health_and_openapi(http: httpx.Client) -> None:
    assert http.get("/health").json()["status"] == "ok"
    document = http.get("/openapi.json").json()
    claim = document["paths"][CLAIM]["post"]
    assert {"200", "204", "400", "401", "403", "405", "413", "503"} <= set(claim["responses"])
    assert "/health" in document["paths"]
