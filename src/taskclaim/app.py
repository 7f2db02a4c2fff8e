"""The HTTP service: the plan's Edge Function and the rest of the task life cycle, as a Starlette app.

Handlers stay thin: authenticate, parse the body, call one method of ``Queue``, shape the answer.
Errors are ``{"error": "..."}`` with the status; ``OPTIONS`` is answered before any auth check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from taskclaim import bodies
from taskclaim.auth import Authenticator, Caller
from taskclaim.bodies import BodyError
from taskclaim.config import Settings
from taskclaim.exceptions import AuthError, DatabaseUnavailable, QueueError
from taskclaim.jwks import JwksCache
from taskclaim.openapi import openapi_document
from taskclaim.queue import Queue

log = logging.getLogger("taskclaim.app")

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
}
CLAIM_BODY_LIMIT = 16 * 1024
TASK_BODY_LIMIT = 512 * 1024
RETRY_AFTER_SECONDS = "2"


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

    def __init__(self, settings: Settings, queue: Queue, jwks: JwksCache) -> None:
        self.settings = settings
        self.queue = queue
        self.jwks = jwks
        self.auth = Authenticator(settings, queue, jwks)

    def lease_seconds(self, body: dict[str, Any]) -> int:
        value = bodies.optional_int(body, "lease_seconds", 1, self.settings.max_lease_seconds)
        return self.settings.default_lease_seconds if value is None else value


Handler = Callable[[Service, Caller, dict[str, Any]], Awaitable[Response]]


def endpoint(handler: Handler, body_limit: int) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: CORS preflight, auth, body, and the mapping of errors to statuses."""

    async def run(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=CORS)
        service: Service = request.app.state.service
        try:
            caller = await service.auth.authenticate(request.headers.get("authorization"))
            body = await bodies.read_object(request, body_limit)
            return await handler(service, caller, body)
        except (AuthError, BodyError, QueueError) as exc:
            return error_response(exc.status, exc.message)
        except DatabaseUnavailable as exc:
            log.warning("database unavailable: %s", exc)
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


async def claim_next_task(service: Service, caller: Caller, body: dict[str, Any]) -> Response:
    worker_id = bodies.optional_str(body, "worker_id") or str(uuid.uuid4())
    row = await service.queue.claim(
        worker_id,
        user_id=caller.user_id,
        lease_seconds=service.lease_seconds(body),
        claim_id=bodies.optional_uuid(body, "claim_id"),
    )
    if row is None:
        return Response(status_code=204, headers=CORS)
    return json_response(_task_answer(row))


def _holder(body: dict[str, Any]) -> tuple[uuid.UUID, str, int | None]:
    return (
        bodies.required_uuid(body, "task_id"),
        bodies.required_str(body, "worker_id"),
        bodies.optional_int(body, "attempt", 1, 2**31 - 1),
    )


async def heartbeat(service: Service, caller: Caller, body: dict[str, Any]) -> Response:
    task_id, worker_id, attempt = _holder(body)
    expires = await service.queue.heartbeat(
        task_id,
        worker_id,
        attempt=attempt,
        lease_seconds=service.lease_seconds(body),
        user_id=caller.user_id,
    )
    return json_response({"task_id": task_id, "lease_expires_at": expires})


async def complete_task(service: Service, caller: Caller, body: dict[str, Any]) -> Response:
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


async def fail_task(service: Service, caller: Caller, body: dict[str, Any]) -> Response:
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


async def release_task(service: Service, caller: Caller, body: dict[str, Any]) -> Response:
    task_id, worker_id, attempt = _holder(body)
    await service.queue.release(task_id, worker_id, attempt=attempt, user_id=caller.user_id)
    return json_response({"task_id": task_id, "status": "Queued"})


async def create_task(service: Service, caller: Caller, body: dict[str, Any]) -> Response:
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


async def task_counts(service: Service, caller: Caller, body: dict[str, Any]) -> Response:
    rows = await service.queue.task_counts(caller.user_id)
    totals = {
        key: sum(r[key] for r in rows)
        for key in ("queued", "blocked", "in_progress", "complete", "failed", "cancelled")
    }
    return json_response({"totals": totals, "by_task_type": rows})


async def health(request: Request) -> Response:
    service: Service = request.app.state.service
    try:
        await service.queue.ping()
    except DatabaseUnavailable as exc:
        return error_response(503, f"database unavailable: {exc}", {"Retry-After": "2"})
    return json_response({"status": "ok"})


async def openapi(request: Request) -> Response:
    return json_response(openapi_document())


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    return error_response(exc.status_code, exc.detail, headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error")


FUNCTIONS: dict[str, tuple[Handler, int]] = {
    "claim-next-task": (claim_next_task, CLAIM_BODY_LIMIT),
    "heartbeat": (heartbeat, CLAIM_BODY_LIMIT),
    "complete-task": (complete_task, TASK_BODY_LIMIT),
    "fail-task": (fail_task, TASK_BODY_LIMIT),
    "release-task": (release_task, CLAIM_BODY_LIMIT),
    "create-task": (create_task, TASK_BODY_LIMIT),
    "task-counts": (task_counts, CLAIM_BODY_LIMIT),
}


async def reaper(queue: Queue, interval: float) -> None:
    """Recover expired leases every ``interval`` seconds; one replica at a time does the work."""
    while True:
        await asyncio.sleep(interval)
        try:
            recovered = await queue.reap(only_if_leader=True)
        except DatabaseUnavailable:
            continue
        except Exception:
            log.exception("reaper failed")
            continue
        for row in recovered:
            log.info(
                "lease expired: task %s is %s (attempt %s)",
                row["task_id"],
                row["status"],
                row["attempts"],
            )


def create_app(settings: Settings, database_url: str) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = Queue.create_pool(
            database_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.pool_timeout_seconds,
        )
        await pool.open(wait=False)
        queue = Queue(pool, max_inflight_batches=settings.claim_batches_inflight)
        jwks = JwksCache(static_jwks=settings.jwks_json, url=settings.jwks_url)
        app.state.service = Service(settings, queue, jwks)
        tasks = []
        if settings.reap_interval_seconds > 0:
            tasks.append(asyncio.create_task(reaper(queue, settings.reap_interval_seconds)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await jwks.aclose()
            await pool.close()

    routes = [
        Route(f"/functions/v1/{name}", endpoint(handler, limit), methods=["POST", "OPTIONS"])
        for name, (handler, limit) in FUNCTIONS.items()
    ]
    routes += [
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )
