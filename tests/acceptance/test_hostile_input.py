"""What one caller sends cannot hurt another's tasks: hostile bodies, tokens and connections against a real
``taskclaim serve``, each answered on its own while well-formed traffic is served as if alone."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from taskclaim import limits
from tests.acceptance.conftest import SERVICE_KEY, Credentials, Server, bearer, service_env
from tests.acceptance.test_lifecycle import claim, holder, post
from tests.helpers import (
    Conn,
    make_project,
    make_task,
    make_tasks,
    nested,
    personal_token,
    status_counts,
    task,
    wait_until,
)
from tests.processes import ServiceProcess

NUL = "x\u0000y"


@pytest.mark.parametrize(
    "params",
    [
        {"n": -10_000_000_000_000_000_000},
        {"n": limits.MAX_SAFE_INTEGER + 1},
        {"n": 1e20},
        {"nest": nested(300)},
        {"nest": nested(limits.MAX_JSON_DEPTH)},
        {NUL: 1},
        {"s": NUL},
    ],
)
def test_params_that_could_poison_a_claim_are_refused_at_create(
    db: Conn, http: httpx.Client, params: dict[str, Any]
) -> None:
    project = make_project(db)
    response = post(
        http, "create-task", {"project_id": str(project), "task_type": "render", "params": params}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("params")
    assert status_counts(db) == {}


def test_a_stored_task_that_cannot_be_sent_fails_alone_and_its_batch_is_served(
    db: Conn, http: httpx.Client, server: Server
) -> None:
    """A row written straight into the table (before this release checked params, say) holding what JSON
    cannot carry back: the claim that takes it fails that one task with the reason, and every other task
    of the same batch, of other users too, is answered and held as usual.

    The Edge Functions answer with PostgreSQL's own JSON text of the row, which every stored row has, so
    there they send all three."""
    alice, bob = make_project(db), make_project(db)
    first = make_task(db, alice)
    poisoned = db.execute(
        "insert into public.tasks (project_id, task_type, params) values (%s, 'render', %s) returning id",
        (bob, Jsonb({"n": -10_000_000_000_000_000_000})),
    ).fetchone()["id"]  # type: ignore[index]
    last = make_task(db, alice)
    response = post(http, "claim-tasks", {"max_tasks": 10, "worker_id": "w"})
    assert response.status_code == 200
    if server.runtime == "edge":
        tasks = response.json()["tasks"]
        assert [t["task_id"] for t in tasks] == [str(first), str(poisoned), str(last)]
        assert tasks[1]["params"] == {"n": -10_000_000_000_000_000_000}
        assert [task(db, t)["status"] for t in (first, poisoned, last)] == ["In Progress"] * 3
        return
    assert [t["task_id"] for t in response.json()["tasks"]] == [str(first), str(last)]
    assert task(db, poisoned)["status"] == "Failed"
    assert "cannot be sent as JSON" in task(db, poisoned)["error"]
    assert [task(db, t)["status"] for t in (first, last)] == ["In Progress", "In Progress"]


@pytest.mark.parametrize(
    ("function", "body", "field"),
    [
        ("claim-next-task", {"worker_id": NUL}, "worker_id"),
        ("claim-next-task", {"task_types": [NUL]}, "task_types"),
        ("claim-tasks", {"worker_id": NUL}, "worker_id"),
        ("create-task", {"task_type": NUL}, "task_type"),
        ("create-task", {"task_type": "t", "idempotency_key": NUL}, "idempotency_key"),
        ("create-task", {"task_type": "t", "params": {"k": [NUL]}}, "params"),
        ("complete-task", {"worker_id": "w", "result": {"r": NUL}}, "result"),
        ("complete-task", {"worker_id": "w", "output_location": NUL}, "output_location"),
        ("fail-task", {"worker_id": "w", "error": NUL}, "error"),
        ("heartbeat", {"worker_id": NUL}, "worker_id"),
        ("release-task", {"worker_id": NUL}, "worker_id"),
    ],
)
def test_a_nul_character_in_any_field_is_a_400_naming_it(
    db: Conn, http: httpx.Client, function: str, body: dict[str, Any], field: str
) -> None:
    project = make_project(db)
    task_id = make_task(db, project)
    if function == "create-task":
        body = {**body, "project_id": str(project)}
    elif function not in ("claim-next-task", "claim-tasks"):
        body = {**body, "task_id": str(task_id)}
    response = post(http, function, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(field)
    assert status_counts(db) == {"Queued": 1}


def test_one_bad_completion_among_concurrent_ones_fails_alone(db: Conn, server: Server) -> None:
    make_tasks(db, make_project(db), 120)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        held = post(http, "claim-tasks", {"max_tasks": 100, "worker_id": "w"}).json()["tasks"]
        held += post(http, "claim-tasks", {"max_tasks": 20, "worker_id": "w"}).json()["tasks"]
    bad = held[::10]
    answers: Counter[int] = Counter()
    lock = threading.Lock()

    def complete(item: dict[str, Any]) -> None:
        result = {"r": NUL} if item in bad else {"ok": True}
        with httpx.Client(base_url=server.url, timeout=30) as client:
            status = post(client, "complete-task", {**holder(item), "result": result}).status_code
        with lock:
            answers[status] += 1

    threads = [threading.Thread(target=complete, args=(item,)) for item in held]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {200: len(held) - len(bad), 400: len(bad)}
    assert status_counts(db) == {"Complete": len(held) - len(bad), "In Progress": len(bad)}


def test_nul_worker_ids_beside_good_claims_fail_only_themselves(db: Conn, server: Server) -> None:
    make_tasks(db, make_project(db), 400)
    answers: Counter[str] = Counter()
    lock = threading.Lock()

    def claimer(worker_id: str) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(40):
                status = post(client, "claim-next-task", {"worker_id": worker_id}).status_code
                with lock:
                    answers[f"{'bad' if NUL in worker_id else 'good'} {status}"] += 1

    threads = [threading.Thread(target=claimer, args=(w,)) for w in ["good-1", NUL, "good-2", NUL + "2"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {"good 200": 80, "bad 400": 80}
    assert status_counts(db) == {"In Progress": 80, "Queued": 320}


@pytest.mark.parametrize(
    "claims",
    [
        {"role": ["service_role"]},
        {"role": {"service_role": True}},
        {"role": 1, "sub": str(uuid.uuid4())},
        {"sub": ["x"]},
        {"sub": {"id": 1}},
        {"sub": "not-a-uuid"},
        {"role": None, "sub": None},
    ],
)
def test_a_signed_jwt_with_claims_of_an_unexpected_shape_is_403(
    db: Conn, http: httpx.Client, claims: dict[str, Any]
) -> None:
    make_task(db, make_project(db))
    response = http.post("/functions/v1/claim-next-task", headers=bearer(Credentials.hs256(claims)))
    assert response.status_code == 403, response.text
    assert status_counts(db) == {"Queued": 1}


@pytest.mark.parametrize("header", [{"alg": ["HS256"]}, {"kid": ["a"], "alg": "ES256"}, {"kid": {"a": 1}}])
def test_a_jwt_header_of_an_unexpected_shape_is_403(http: httpx.Client, header: dict[str, Any]) -> None:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    token = f"{part({'typ': 'JWT', 'alg': 'HS256', **header})}.{part({'sub': str(uuid.uuid4())})}.c2ln"
    response = http.post("/functions/v1/claim-next-task", headers=bearer(token))
    assert response.status_code == 403, response.text


@pytest.mark.parametrize(
    ("function", "body", "field"),
    [
        ("claim-next-task", {"task_type": "render"}, "task_type"),
        ("claim-tasks", {"max_task": 5}, "max_task"),
        ("create-task", {"task_type": "t", "param": {}}, "param"),
        ("task-counts", {"user_id": str(uuid.uuid4())}, "user_id"),
    ],
)
def test_an_unknown_field_is_a_400_naming_it_and_claims_nothing(
    db: Conn, http: httpx.Client, function: str, body: dict[str, Any], field: str
) -> None:
    project = make_project(db)
    make_task(db, project, task_type="train")
    if function == "create-task":
        body = {**body, "project_id": str(project)}
    response = post(http, function, body)
    assert response.status_code == 400
    assert field in response.json()["error"]
    assert status_counts(db) == {"Queued": 1}


def test_a_heartbeat_without_a_lease_keeps_the_lease_the_claim_asked_for(
    db: Conn, http: httpx.Client
) -> None:
    task_id = make_task(db, make_project(db))
    claimed = claim(http, "w", lease_seconds=3600)
    answer = post(http, "heartbeat", holder(claimed))
    assert answer.status_code == 200
    left = db.execute("select lease_expires_at - now() as left from public.tasks where id = %s", (task_id,))
    seconds = left.fetchone()["left"].total_seconds()  # type: ignore[index]
    assert 3590 < seconds <= 3600


def test_a_500_does_not_close_the_connection(broken_service: str) -> None:
    """A bug answered 500 leaves the keep-alive connection open: the client's next request on the same
    socket is answered."""
    host, port = broken_service.split("//")[1].split("/")[0].split(":")
    request = (
        f"POST /functions/v1/claim-next-task HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SERVICE_KEY}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        assert b"500" in read_response(sock).split(b"\r\n")[0]
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200" in read_response(sock).split(b"\r\n")[0]


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed the connection: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    while len(rest) < length:
        rest += sock.recv(4096)
    return head


@pytest.fixture
def impatient_service(db_url: str, jwks_url: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    env = service_env(db_url, jwks_url, tmp_path) | {
        "TASKCLAIM_HTTP_KEEPALIVE": "1",
        "TASKCLAIM_HTTP_READ_TIMEOUT": "1",
        "TASKCLAIM_REAP_INTERVAL": "0",
    }
    process = ServiceProcess(env, tmp_path / "serve.log").start()
    yield process
    process.stop()


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


@pytest.mark.slow
def test_idle_and_slow_connections_are_closed(impatient_service: ServiceProcess) -> None:
    address = ("127.0.0.1", impatient_service.port)
    silent = socket.create_connection(address)
    tricklers = [socket.create_connection(address) for _ in range(20)]
    slow_body = socket.create_connection(address)
    slow_body.sendall(
        b"POST /functions/v1/claim-next-task HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
    )
    header = b"POST /functions/v1/claim-next-task HTTP/1.1\r\nHost: x\r\n"
    started = time.monotonic()
    for byte in header[:12]:  # a byte every 0.25 s: the headers never complete within 1 s
        for sock in tricklers:
            with contextlib.suppress(OSError):  # closed by the server already: good
                sock.sendall(bytes([byte]))
        time.sleep(0.25)
    everyone = [silent, slow_body, *tricklers]
    assert all(closed_by_server(sock, within=5) for sock in everyone)
    assert time.monotonic() - started < 15
    for sock in everyone:
        sock.close()
    # A long poll waits longer than every timeout and is still answered.
    with httpx.Client(base_url=impatient_service.url, timeout=30) as http:
        started = time.monotonic()
        response = post(http, "claim-next-task", {"wait_seconds": 2.5, "task_types": ["nothing-of-this"]})
        assert response.status_code == 204 and time.monotonic() - started >= 2.4


def test_a_users_token_can_not_create_in_another_users_project(db: Conn, http: httpx.Client) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    bobs = make_project(db, bob)
    response = post(
        http, "create-task", {"project_id": str(bobs), "task_type": "t"}, token=personal_token(db, alice)
    )
    assert response.status_code == 403
    assert status_counts(db) == {}


hostile_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.just(NUL)
    | st.uuids().map(str),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
hostile_bodies = st.one_of(
    st.dictionaries(
        st.sampled_from(
            ["worker_id", "task_id", "attempt", "lease_seconds", "max_tasks", "task_types", "wait_seconds",
             "claim_id", "result", "params", "project_id", "task_type", "error", "retry", "junk"]
        ),
        hostile_values,
        max_size=5,
    ).map(lambda body: json.dumps(body).encode()),  # big integers too
    st.binary(max_size=40),
)  # fmt: skip


@pytest.mark.slow
def test_random_requests_beside_well_formed_traffic_get_no_5xx_and_do_not_touch_it(
    db: Conn, server: Server
) -> None:
    alice, mallory = uuid.uuid4(), uuid.uuid4()
    alices = set(map(str, make_tasks(db, make_project(db, alice), 150)))
    make_task(db, make_project(db, mallory))  # Mallory's own project and task, for her to aim at
    alice_token, mallory_token = personal_token(db, alice), personal_token(db, mallory)
    statuses: Counter[int] = Counter()
    completed: list[str] = []
    stop = threading.Event()

    def alice_works() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while not stop.is_set():
                response = post(http, "claim-next-task", {"worker_id": "alice-w"}, token=alice_token)
                statuses[response.status_code] += 1
                if response.status_code != 200:
                    continue
                done = post(
                    http, "complete-task", {**holder(response.json()), "result": {"ok": 1}}, alice_token
                )
                statuses[done.status_code] += 1
                completed.append(response.json()["task_id"])

    functions = ["claim-next-task", "claim-tasks", "heartbeat", "complete-task", "fail-task", "release-task",
                 "create-task", "task-counts"]  # fmt: skip
    tokens = st.one_of(
        st.just(mallory_token),
        st.text(max_size=30),
        st.dictionaries(st.sampled_from(["sub", "role", "exp"]), hostile_values).map(
            lambda claims: Credentials.hs256(claims, secret="wrong-secret-" + "w" * 30)
        ),
        st.builds(lambda: Credentials.user_jwt(mallory)),
    )
    answers: Counter[int] = Counter()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(function=st.sampled_from(functions), body=hostile_bodies, token=tokens, scheme=st.sampled_from(
        ["Bearer ", "bearer ", "Basic ", ""]))  # fmt: skip
    def hostile(function: str, body: bytes, token: str, scheme: str) -> None:
        value = (scheme + token).strip()  # what an HTTP client can send at all
        headers = {"Authorization": value} if value and value.isprintable() and value.isascii() else {}
        response = hostile_http.post(f"/functions/v1/{function}", content=body, headers=headers)
        answers[response.status_code] += 1
        assert response.status_code < 500, response.text

    worker = threading.Thread(target=alice_works)
    worker.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as hostile_http:
            hostile()
    finally:
        deadline = time.monotonic() + 60
        while len(completed) < len(alices) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        worker.join()
    assert sorted(completed) == sorted(alices)  # each of Alice's tasks once, by her own worker
    assert set(statuses) <= {200, 204}
    assert all(task(db, t)["worker_id"] == "alice-w" for t in alices)
    assert sum(answers.values()) == 300 and max(answers) < 500


def test_a_claim_whose_client_left_while_it_ran_gives_its_task_back_at_once(
    db: Conn, db_url: str, server: Server
) -> None:
    """The claim is held up by a table lock until its client has gone; the task it then takes goes
    straight back to the queue rather than waiting out a five-minute lease."""
    import psycopg

    task_id = make_task(db, make_project(db))
    created = task(db, task_id)["updated_at"]
    with psycopg.connect(db_url) as blocker:
        blocker.execute("lock table public.tasks in exclusive mode")
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(
            f"POST /functions/v1/claim-next-task HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SERVICE_KEY}"
            "\r\nContent-Length: 2\r\n\r\n{}".encode()
        )
        waiting_on_lock = (
            "select 1 from pg_stat_activity where wait_event_type = 'Lock' and application_name = 'taskclaim'"
        )
        wait_until(
            lambda: db.execute(waiting_on_lock).fetchone() is not None, "the claim to reach the database"
        )
        sock.close()
        time.sleep(0.2)  # the server sees the connection close
    # Claimed (updated_at moved), then given back.
    wait_until(
        lambda: (lambda row: row["updated_at"] != created and row["status"] == "Queued")(task(db, task_id)),
        "the task to be claimed and given back",
    )
    row = task(db, task_id)
    assert (row["attempts"], row["lease_expires_at"]) == (0, None)
