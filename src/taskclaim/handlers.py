"""The Edge Functions: ``POST /functions/v1/<name>``, one thin handler each.

A handler gets the caller (already authenticated) and the body (already parsed), calls one method of
``Queue`` and shapes the answer. ``endpoint`` wraps each one: the CORS preflight before any auth check,
auth, the body, errors as ``{"error": "..."}`` with their status, and the request metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from taskclaim import bodies
from taskclaim.auth import Authenticator, Caller
from taskclaim.bodies import BodyError
from taskclaim.config import Settings
from taskclaim.exceptions import AuthError, DatabaseUnavailable, QueueError
from taskclaim.jwks import JwksCache
from taskclaim.metrics import Metrics
from taskclaim.notifier import ReadyNotifier
from taskclaim.queue import Queue

log = logging.getLogger("taskclaim.handlers")

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
}
CLAIM_BODY_LIMIT = 16 * 1024
TASK_BODY_LIMIT = 512 * 1024
RETRY_AFTER_SECONDS = "2"
MAX_WAIT_SECONDS = 60


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(content),
        status_code=status,
        media_type="application/json",
        headers={**CORS, **(headers or {})},
    )


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message}, status, headers)


class Service:
    """What the handlers share: settings, the queue and the authenticator."""

    def __init__(self, settings: Settings, queue: Queue, jwks: JwksCache, notifier: ReadyNotifier) -> None:
        self.settings = settings
        self.queue = queue
        self.jwks = jwks
        self.notifier = notifier
        self.auth = Authenticator(settings, queue, jwks)
        self.metrics = Metrics()

    def lease_seconds(self, body: dict[str, Any]) -> int:
        value = bodies.optional_int(body, "lease_seconds", 1, self.settings.max_lease_seconds)
        return self.settings.default_lease_seconds if value is None else value


Handler = Callable[[Service, Caller, dict[str, Any], Request], Awaitable[Response]]


def endpoint(name: str, handler: Handler, body_limit: int) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: CORS preflight, auth, body, the mapping of errors to statuses, metrics."""

    async def run(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=CORS)
        service: Service = request.app.state.service
        started = time.perf_counter()
        response = await answer(service, request)
        service.metrics.observe(name, response.status_code, time.perf_counter() - started)
        return response

    async def answer(service: Service, request: Request) -> Response:
        try:
            caller = await service.auth.authenticate(request.headers.get("authorization"))
            body = await bodies.read_object(request, body_limit)
            return await handler(service, caller, body, request)
        except (AuthError, BodyError, QueueError) as exc:
            return error_response(exc.status, exc.message)
        except DatabaseUnavailable as exc:
            log.warning("database unavailable: %s", exc)
            service.metrics.database_unavailable += 1
            return error_response(503, "database unavailable", {"Retry-After": RETRY_AFTER_SECONDS})

    return run


def _task_answer(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "task_id": row["task_id"],
        "params": row["params"],
        "task_type": row["task_type"],
        "project_id": row["project_id"],
        "worker_id": row["worker_id"],
        "attempt": row["attempt"],
        "lease_expires_at": row["lease_expires_at"],
    }


MAX_BATCH_TASKS = 100


async def _long_poll(
    service: Service,
    caller: Caller,
    body: dict[str, Any],
    request: Request,
    claim: Callable[[], Awaitable[list[dict[str, Any]]]],
) -> list[dict[str, Any]]:
    """``claim()`` once; with ``wait_seconds`` in the body, again whenever a task of the caller's scope
    becomes ready, until something is claimed or the time is up.

    A client that goes away while it waits is noticed at once: the wait ends, and a task claimed for it
    in that moment goes straight back to the queue instead of waiting out its lease."""
    wait_seconds = bodies.optional_number(body, "wait_seconds", 0, MAX_WAIT_SECONDS) or 0.0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    gone: asyncio.Task[None] | None = None
    waiting: asyncio.Task[None] | None = None
    try:
        while True:
            # Only a long poll needs a wake-up; it is taken before the claim, so a task arriving now wakes us.
            woken = service.notifier.event(caller.user_id) if wait_seconds > 0 else None
            claimed = await claim()
            if gone is not None and gone.done():
                await _give_back(service, caller, claimed)
                return []
            remaining = deadline - loop.time()
            if claimed or woken is None or remaining <= 0:
                return claimed
            gone = gone or loop.create_task(_disconnected(request))
            waiting = loop.create_task(service.notifier.wait(woken, remaining))
            await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
            if gone.done():
                return []
    finally:
        for task in (gone, waiting):
            if task is not None and not task.done():
                task.cancel()


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (the body is read by now, so the next message is the disconnect)."""
    with contextlib.suppress(Exception):  # a receive channel that fails counts as gone too
        while (await request.receive())["type"] != "http.disconnect":
            pass


async def _give_back(service: Service, caller: Caller, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        await service.queue.release(
            row["task_id"], row["worker_id"], attempt=row["attempt"], user_id=caller.user_id
        )
    if rows:
        log.info("released %d task(s) claimed for a client that had gone", len(rows))


async def claim_next_task(
    service: Service, caller: Caller, body: dict[str, Any], request: Request
) -> Response:
    worker_id = bodies.optional_str(body, "worker_id") or str(uuid.uuid4())
    lease_seconds = service.lease_seconds(body)
    claim_id = bodies.optional_uuid(body, "claim_id")
    task_types = bodies.optional_str_tuple(body, "task_types")

    async def claim() -> list[dict[str, Any]]:
        row = await service.queue.claim(
            worker_id,
            user_id=caller.user_id,
            lease_seconds=lease_seconds,
            claim_id=claim_id,
            task_types=task_types,
        )
        return [] if row is None else [row]

    rows = await _long_poll(service, caller, body, request, claim)
    if not rows:
        return Response(status_code=204, headers=CORS)
    return json_response(_task_answer(rows[0]))


async def claim_tasks(service: Service, caller: Caller, body: dict[str, Any], request: Request) -> Response:
    """Up to ``max_tasks`` of the oldest ready tasks in one statement, all held by ``worker_id``."""
    worker_id = bodies.optional_str(body, "worker_id") or str(uuid.uuid4())
    lease_seconds = service.lease_seconds(body)
    max_tasks = bodies.optional_int(body, "max_tasks", 1, MAX_BATCH_TASKS) or 1
    task_types = bodies.optional_str_tuple(body, "task_types")
    rows = await _long_poll(
        service,
        caller,
        body,
        request,
        lambda: service.queue.claim_many(
            worker_id, max_tasks, user_id=caller.user_id, lease_seconds=lease_seconds, task_types=task_types
        ),
    )
    if not rows:
        return Response(status_code=204, headers=CORS)
    return json_response({"tasks": [_task_answer(row) for row in rows]})


def _holder(body: dict[str, Any]) -> tuple[uuid.UUID, str, int | None]:
    return (
        bodies.required_uuid(body, "task_id"),
        bodies.required_str(body, "worker_id"),
        bodies.optional_int(body, "attempt", 1, 2**31 - 1),
    )


async def heartbeat(service: Service, caller: Caller, body: dict[str, Any], request: Request) -> Response:
    task_id, worker_id, attempt = _holder(body)
    expires = await service.queue.heartbeat(
        task_id,
        worker_id,
        attempt=attempt,
        lease_seconds=service.lease_seconds(body),
        user_id=caller.user_id,
    )
    return json_response({"task_id": task_id, "lease_expires_at": expires})


async def complete_task(service: Service, caller: Caller, body: dict[str, Any], request: Request) -> Response:
    task_id, worker_id, attempt = _holder(body)
    row = await service.queue.complete(
        task_id,
        worker_id,
        attempt=attempt,
        result=body.get("result"),
        output_location=bodies.optional_str(body, "output_location", 2048),
        user_id=caller.user_id,
    )
    return json_response(row)


async def fail_task(service: Service, caller: Caller, body: dict[str, Any], request: Request) -> Response:
    task_id, worker_id, attempt = _holder(body)
    row = await service.queue.fail(
        task_id,
        worker_id,
        attempt=attempt,
        error=bodies.optional_str(body, "error", 8192),
        retry=bodies.optional_bool(body, "retry", False),
        user_id=caller.user_id,
    )
    return json_response(row)


async def release_task(service: Service, caller: Caller, body: dict[str, Any], request: Request) -> Response:
    task_id, worker_id, attempt = _holder(body)
    await service.queue.release(task_id, worker_id, attempt=attempt, user_id=caller.user_id)
    return json_response({"task_id": task_id, "status": "Queued"})


async def create_task(service: Service, caller: Caller, body: dict[str, Any], request: Request) -> Response:
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise BodyError(400, "params must be a JSON object")
    row = await service.queue.create_task(
        bodies.required_uuid(body, "project_id"),
        bodies.required_str(body, "task_type"),
        params,
        dependant_on=bodies.optional_uuid(body, "dependant_on"),
        idempotency_key=bodies.optional_str(body, "idempotency_key"),
        user_id=caller.user_id,
        max_attempts=bodies.optional_int(body, "max_attempts", 1, 1000) or 3,
    )
    return json_response(row, 201 if row["created"] else 200)


async def task_counts(service: Service, caller: Caller, body: dict[str, Any], request: Request) -> Response:
    rows = await service.queue.task_counts(caller.user_id)
    totals = {
        key: sum(r[key] for r in rows)
        for key in ("queued", "blocked", "in_progress", "complete", "failed", "cancelled")
    }
    return json_response({"totals": totals, "by_task_type": rows})


FUNCTIONS: dict[str, tuple[Handler, int]] = {
    "claim-next-task": (claim_next_task, CLAIM_BODY_LIMIT),
    "claim-tasks": (claim_tasks, CLAIM_BODY_LIMIT),
    "heartbeat": (heartbeat, CLAIM_BODY_LIMIT),
    "complete-task": (complete_task, TASK_BODY_LIMIT),
    "fail-task": (fail_task, TASK_BODY_LIMIT),
    "release-task": (release_task, CLAIM_BODY_LIMIT),
    "create-task": (create_task, TASK_BODY_LIMIT),
    "task-counts": (task_counts, CLAIM_BODY_LIMIT),
}
