"""Long-poll claims woken by LISTEN/NOTIFY, the Prometheus metrics and the dashboard page."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.acceptance.conftest import SERVICE_KEY, Credentials, Server, bearer
from tests.acceptance.test_lifecycle import claim, post
from tests.helpers import Conn, long_polls_waiting, make_project, make_task, status_counts, task, wait_until

CLAIM = "/functions/v1/claim-next-task"


def claim_in_background(  # type: ignore[no-untyped-def]
    server: Server, body: dict[str, object], token: str = SERVICE_KEY, path: str = CLAIM
):
    result: dict[str, object] = {}

    def run() -> None:
        started = time.monotonic()
        with httpx.Client(base_url=server.url, timeout=60) as client:
            result["response"] = client.post(path, json=body, headers=bearer(token))
        result["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_a_waiting_claim_is_woken_by_a_new_task(db: Conn, server: Server) -> None:
    project = make_project(db)
    thread, result = claim_in_background(server, {"wait_seconds": 30})
    long_polls_waiting(server.url)
    task_id = make_task(db, project)
    thread.join(40)
    response = result["response"]
    assert isinstance(response, httpx.Response) and response.status_code == 200
    assert response.json()["task_id"] == str(task_id)
    # Woken by the notification, not by the waiters' own 5-second retry (nor the 30-second deadline).
    assert result["seconds"] < 4.0


def test_a_waiting_claim_is_woken_when_a_parent_completes(db: Conn, server: Server) -> None:
    project = make_project(db)
    parent = make_task(db, project)
    db.execute("update tasks set status = 'In Progress' where id = %s", (parent,))
    child = make_task(db, project, dependant_on=parent)
    thread, result = claim_in_background(server, {"wait_seconds": 30})
    long_polls_waiting(server.url)
    db.execute("update tasks set status = 'Complete' where id = %s", (parent,))
    thread.join(40)
    response = result["response"]
    assert isinstance(response, httpx.Response) and response.json()["task_id"] == str(child)
    assert result["seconds"] < 4.0


def test_a_wait_with_nothing_to_claim_ends_in_204(http: httpx.Client) -> None:
    started = time.monotonic()
    response = http.post(CLAIM, json={"wait_seconds": 1}, headers=bearer(SERVICE_KEY))
    assert response.status_code == 204
    assert time.monotonic() - started >= 1.0


def test_a_waiting_user_is_not_given_another_users_task(db: Conn, server: Server) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    thread, result = claim_in_background(server, {"wait_seconds": 2}, Credentials.user_jwt(alice))
    long_polls_waiting(server.url)
    bobs = make_task(db, make_project(db, bob))
    thread.join(10)
    response = result["response"]
    assert isinstance(response, httpx.Response) and response.status_code == 204
    assert task(db, bobs)["status"] == "Queued"


@pytest.mark.parametrize("wait", [-1, 61, "soon", True])
def test_bad_wait_seconds_is_400(http: httpx.Client, wait: object) -> None:
    response = http.post(CLAIM, json={"wait_seconds": wait}, headers=bearer(SERVICE_KEY))
    assert response.status_code == 400
    assert "wait_seconds" in response.json()["error"]


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


@pytest.mark.python_only
def test_metrics_count_requests_and_read_the_queue(db: Conn, http: httpx.Client) -> None:
    project = make_project(db)
    for _ in range(3):
        make_task(db, project)
    before = http.get("/metrics").text
    key = 'taskclaim_http_requests_total{route="claim-next-task",status="200"}'
    claimed_before = metric(before, key) if key in before else 0.0
    assert http.post(CLAIM, headers=bearer(SERVICE_KEY)).status_code == 200
    assert http.post(CLAIM, headers=bearer("nope")).status_code == 403
    text = http.get("/metrics").text
    assert metric(text, key) == claimed_before + 1
    assert metric(text, 'taskclaim_http_requests_total{route="claim-next-task",status="403"}') >= 1
    assert metric(text, "taskclaim_tasks_ready") == status_counts(db)["Queued"] == 2
    assert metric(text, "taskclaim_tasks_in_progress") == 1
    assert metric(text, "taskclaim_listening") == 1
    assert 'taskclaim_http_request_seconds_bucket{route="claim-next-task",le="+Inf"}' in text
    types = dict(line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE"))
    for name in ("claim_statements", "claims_coalesced", "complete_statements", "completions_coalesced"):
        assert types[f"taskclaim_{name}_total"] == "counter", name  # they only grow
    assert types["taskclaim_tasks_ready"] == "gauge"
    assert 'taskclaim_tasks_ready_by_type{task_type="render"} 2' in text


@pytest.mark.python_only
def test_queue_lag_is_the_age_of_the_oldest_ready_task(db: Conn, http: httpx.Client) -> None:
    assert metric(http.get("/metrics").text, "taskclaim_oldest_ready_task_age_seconds") == 0
    make_task(db, make_project(db), created_at=datetime.now(UTC) - timedelta(minutes=10))
    lag = metric(http.get("/metrics").text, "taskclaim_oldest_ready_task_age_seconds")
    assert 600 <= lag < 660


@pytest.mark.python_only
def test_the_dashboard_page_is_served(http: httpx.Client) -> None:
    response = http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["referrer-policy"] == "no-referrer"
    script = http.get("/dashboard.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    for route in ("task-counts", "list-tasks", "get-task", "retry-task", "cancel-task"):
        assert f'"{route}"' in script.text
    assert http.get("/dashboard.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("function", ["claim-next-task", "claim-tasks"])
def test_a_long_poll_whose_client_went_away_claims_nothing(db: Conn, server: Server, function: str) -> None:
    body = b'{"wait_seconds": 30}'
    request = (
        f"POST /functions/v1/{function} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SERVICE_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as client:
        client.sendall(request)
        long_polls_waiting(server.url)  # the service waits for a task on this client's behalf
    long_polls_waiting(server.url, 0)  # the client has gone, and so has the wait
    task_id = make_task(db, make_project(db))  # would wake the waiter, had it not ended
    time.sleep(0.5)  # a waiter still there would claim it within milliseconds
    row = task(db, task_id)
    assert (row["status"], row["attempts"]) == ("Queued", 0)


@pytest.mark.python_only
def test_the_service_proves_its_notifications_arrive(http: httpx.Client) -> None:
    wait_until(lambda: metric(http.get("/metrics").text, "taskclaim_notifications_arriving") == 1, "a probe")
    assert http.get("/health").json() == {"status": "ok", "notifications": "arriving"}


@pytest.mark.python_only
def test_a_long_poll_that_trusts_its_notifications_does_not_poll(db: Conn, http: httpx.Client) -> None:
    """While the probe comes back, an idle long poll claims when it starts and only waits after that: no
    claim every 5 s (which would make three for 11 s), and none when its wait ends, since its scope is
    known to be empty. A second long poll of that scope sends no claim at all."""
    wait_until(lambda: metric(http.get("/metrics").text, "taskclaim_notifications_arriving") == 1, "a probe")
    make_task(db, make_project(db))  # its notification ends whatever an earlier test left known empty
    claim(http, "w")
    page = http.get("/metrics").text
    before = metric(page, "taskclaim_claim_statements_total")
    skipped = metric(page, "taskclaim_claims_skipped_total")
    started = time.monotonic()
    answer = http.post(
        "/functions/v1/claim-next-task", json={"wait_seconds": 11}, headers=bearer(SERVICE_KEY)
    )
    assert answer.status_code == 204 and time.monotonic() - started >= 10.5
    page = http.get("/metrics").text
    assert metric(page, "taskclaim_claim_statements_total") - before == 1
    assert metric(page, "taskclaim_claims_skipped_total") - skipped == 1
    answer = http.post("/functions/v1/claim-tasks", json={"wait_seconds": 1}, headers=bearer(SERVICE_KEY))
    assert answer.status_code == 204
    page = http.get("/metrics").text
    assert metric(page, "taskclaim_claim_statements_total") - before == 1
    assert metric(page, "taskclaim_claims_skipped_total") - skipped == 3


@pytest.mark.python_only
def test_a_known_empty_scope_still_wakes_at_once_and_forgets_when_listen_is_lost(
    db: Conn, http: httpx.Client, server: Server
) -> None:
    """Known empty lasts until the scope's next notification: a task created while a skipping long poll
    waits is claimed at once. When the LISTEN connection is lost (notifications in between would be
    missed), nothing is trusted: the next long poll claims again."""
    wait_until(lambda: metric(http.get("/metrics").text, "taskclaim_notifications_arriving") == 1, "a probe")
    user = uuid.uuid4()
    token = Credentials.user_jwt(user)
    project = make_project(db, user)
    assert post(http, "claim-next-task", {"wait_seconds": 0.5}, token).status_code == 204  # marks it
    answers: list[httpx.Response] = []
    poll = threading.Thread(
        target=lambda: answers.append(post(http, "claim-next-task", {"wait_seconds": 10}, token))
    )
    poll.start()
    long_polls_waiting(server.url)
    created = time.monotonic()
    task_id = make_task(db, project)
    poll.join(10)
    assert answers[0].status_code == 200 and answers[0].json()["task_id"] == str(task_id)
    assert time.monotonic() - created < 2
    assert post(http, "claim-next-task", {"wait_seconds": 0.5}, token).status_code == 204  # marks it again
    before = metric(http.get("/metrics").text, "taskclaim_claim_statements_total")
    assert post(http, "claim-next-task", {"wait_seconds": 0.5}, token).status_code == 204
    assert metric(http.get("/metrics").text, "taskclaim_claim_statements_total") == before  # skipped
    listeners = "select pid from pg_stat_activity where application_name = 'taskclaim-listen'"

    def pids() -> set[int]:
        return {row["pid"] for row in db.execute(listeners).fetchall()}

    old = pids()
    db.execute("select pg_terminate_backend(pid) from pg_stat_activity where pid = any(%s)", (list(old),))
    wait_until(lambda: bool(pids() - old), "a new LISTEN connection")
    assert post(http, "claim-next-task", {"wait_seconds": 0.5}, token).status_code == 204
    assert metric(http.get("/metrics").text, "taskclaim_claim_statements_total") == before + 1


def test_a_queued_task_that_changes_owner_wakes_the_new_owners_long_poll(db: Conn, server: Server) -> None:
    """A project moved to another user takes its queued tasks along (a trigger), and that notifies the new
    owner: a long poll of theirs, even one whose scope was known empty, claims the task at once."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    project = make_project(db, alice)
    task_id = make_task(db, project)
    token = Credentials.user_jwt(bob)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert post(http, "claim-next-task", {"wait_seconds": 0.5}, token).status_code == 204
        answers: list[httpx.Response] = []
        poll = threading.Thread(
            target=lambda: answers.append(post(http, "claim-next-task", {"wait_seconds": 20}, token))
        )
        poll.start()
        long_polls_waiting(server.url)
        moved = time.monotonic()
        db.execute("update public.projects set user_id = %s where id = %s", (bob, project))
        poll.join(25)
    assert answers[0].status_code == 200 and answers[0].json()["task_id"] == str(task_id)
    assert time.monotonic() - moved < 3  # woken, not the 5 s retry
