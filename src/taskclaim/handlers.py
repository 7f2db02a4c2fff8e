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
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, NamedTuple

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from taskclaim import bodies, limits
from taskclaim.auth import Caller
from taskclaim.batching import distinct_rounds
from taskclaim.bodies import Body
from taskclaim.exceptions import AuthError, BodyError, DatabaseUnavailable, QueueError, queue_error
from taskclaim.longpoll import long_poll
from taskclaim.service import Service

log = logging.getLogger("taskclaim.handlers")

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
}
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


def no_content() -> Response:
    return Response(status_code=204, headers=CORS)


Handler = Callable[[Service, Caller, Any, Request], Awaitable[Response]]


def endpoint(
    name: str, handler: Handler, kind: type[Body], body_limit: int
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: CORS preflight, auth, body, the mapping of errors to statuses, metrics.

    Whatever goes wrong is answered here, a bug included (500, logged): the exception never reaches the
    server, which would close the connection and fail the client's next request on it too."""

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
            body = bodies.decode(kind, await bodies.read(request, body_limit))
            return await handler(service, caller, body, request)
        except (AuthError, BodyError, QueueError) as exc:
            return error_response(exc.status, exc.message)
        except DatabaseUnavailable as exc:
            log.warning("database unavailable: %s", exc)
            service.metrics.database_unavailable += 1
            return error_response(503, "database unavailable", {"Retry-After": RETRY_AFTER_SECONDS})
        except ClientDisconnect:
            return error_response(400, "the client went away before its body was read")
        except Exception:
            log.exception("unhandled error in %s", name)
            return error_response(500, "internal error")

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


async def _sendable(service: Service, caller: Caller, rows: list[dict[str, Any]]) -> list[bytes]:
    """Each claimed task encoded as JSON. A task that cannot be (a row written before its params were
    checked, say) is failed with the reason instead of being left In Progress with nobody to hold it; it
    would fail every claim that took it. The others of the same claim are answered as usual."""
    encoded = []
    for row in rows:
        try:
            encoded.append(orjson.dumps(_task_answer(row)))
        except (TypeError, orjson.JSONEncodeError) as exc:
            log.error("task %s cannot be sent as JSON (%s); failing it", row["task_id"], exc)
            with contextlib.suppress(QueueError):
                await service.queue.fail(
                    row["task_id"],
                    row["worker_id"],
                    attempt=row["attempt"],
                    error=f"the task cannot be sent as JSON: {exc}",
                    retry=False,
                    user_id=caller.user_id,
                )
    return encoded


def _json_bytes(payload: bytes) -> Response:
    return Response(payload, media_type="application/json", headers=CORS)


async def claim_next_task(
    service: Service, caller: Caller, body: bodies.ClaimNextTask, request: Request
) -> Response:
    worker_id = body.worker_id or str(uuid.uuid4())
    lease_seconds = service.lease_seconds(body.lease_seconds)
    task_types = None if body.task_types is None else tuple(sorted(set(body.task_types)))

    async def claim() -> list[dict[str, Any]]:
        row = await service.queue.claim(
            worker_id,
            user_id=caller.user_id,
            lease_seconds=lease_seconds,
            claim_id=body.claim_id,
            task_types=task_types,
        )
        return [] if row is None else [row]

    empty_key = None if body.claim_id is not None else _empty_key(service, caller, task_types)
    rows = await long_poll(
        service.notifier,
        service.queue,
        caller,
        service.wait_seconds(body.wait_seconds),
        request,
        claim,
        empty_key,
    )
    encoded = await _sendable(service, caller, rows)
    return _json_bytes(encoded[0]) if encoded else no_content()


def _empty_key(service: Service, caller: Caller, task_types: tuple[str, ...] | None) -> Hashable | None:
    """What a long poll's claim looks at, for known-empty scopes (taskclaim.longpoll). None under a cap: a
    claim can then find nothing while tasks are ready, and a completion that makes room notifies nobody."""
    return None if service.queue.cap is not None else (caller.user_id, task_types)


async def claim_tasks(
    service: Service, caller: Caller, body: bodies.ClaimTasks, request: Request
) -> Response:
    """Up to ``max_tasks`` of the oldest ready tasks in one statement, all held by ``worker_id``."""
    worker_id = body.worker_id or str(uuid.uuid4())
    lease_seconds = service.lease_seconds(body.lease_seconds)
    task_types = None if body.task_types is None else tuple(sorted(set(body.task_types)))
    wait = service.wait_seconds(body.wait_seconds)

    async def claim() -> list[dict[str, Any]]:
        return await long_poll(
            service.notifier,
            service.queue,
            caller,
            wait,
            request,
            lambda: service.queue.claim_many(
                worker_id,
                body.max_tasks or 1,
                user_id=caller.user_id,
                lease_seconds=lease_seconds,
                task_types=task_types,
            ),
            _empty_key(service, caller, task_types),
        )

    # A worker's finished tasks ride on its next claim: completed alongside it (on another connection, so
    # the request takes as long as the longer of the two), answered in `completed`, and never held back by
    # the claim's wait. A failed claim does not undo them.
    completed: list[dict[str, Any]] | None = None
    if body.complete is None:
        rows = await claim()
    else:
        completed, rows = await asyncio.gather(_complete_items(service, caller, body.complete), claim())
    encoded = await _sendable(service, caller, rows)
    tasks = b'{"tasks":[' + b",".join(encoded) + b"]"
    if completed is not None:
        return _json_bytes(tasks + b',"completed":' + orjson.dumps(completed) + b"}")
    return _json_bytes(tasks + b"}") if encoded else no_content()


async def heartbeat(service: Service, caller: Caller, body: bodies.Heartbeat, request: Request) -> Response:
    service.check_lease(body.lease_seconds)
    expires = await service.queue.heartbeat(
        body.task_id,
        body.worker_id,
        attempt=body.attempt,
        lease_seconds=body.lease_seconds,
        user_id=caller.user_id,
    )
    return json_response({"task_id": body.task_id, "lease_expires_at": expires})


async def heartbeat_tasks(
    service: Service, caller: Caller, body: bodies.HeartbeatTasks, request: Request
) -> Response:
    """Many heartbeats in one request, each answered on its own (``status_code`` 200, 404 or 409), in the
    order given. One statement per round: a task id given twice goes in the next round."""
    for item in body.tasks:
        service.check_lease(item.lease_seconds)
    answers: list[dict[str, Any] | None] = [None] * len(body.tasks)
    for indexes in distinct_rounds([item.task_id for item in body.tasks]):
        this_round = [(index, body.tasks[index]) for index in indexes]
        items = [
            {
                "task_id": item.task_id,
                "worker_id": item.worker_id,
                "attempt": item.attempt,
                "lease_seconds": item.lease_seconds,
            }
            for _, item in this_round
        ]
        rows = await service.queue.heartbeat_many(items, caller.user_id)
        for (index, item), row in zip(this_round, rows, strict=True):
            if row["error_code"] is None:
                answers[index] = {
                    "task_id": item.task_id,
                    "status_code": 200,
                    "lease_expires_at": row["lease_expires_at"],
                }
            else:
                error = queue_error(row["error_code"]) or QueueError
                answers[index] = {"task_id": item.task_id, "status_code": error.status, "error": row["error"]}
    return json_response({"results": answers})


async def complete_task(
    service: Service, caller: Caller, body: bodies.CompleteTask, request: Request
) -> Response:
    row = await service.queue.complete(
        body.task_id,
        body.worker_id,
        attempt=body.attempt,
        result=body.result,
        output_location=body.output_location,
        user_id=caller.user_id,
    )
    return json_response(row)


async def complete_tasks(
    service: Service, caller: Caller, body: bodies.CompleteTasks, request: Request
) -> Response:
    """Many completions in one request, each answered on its own (``status_code`` 200, 404 or 409), in the
    order given. They join the coalesced completions of every other request of the scope."""
    return json_response({"results": await _complete_items(service, caller, body.tasks)})


async def _complete_items(
    service: Service, caller: Caller, items: list[bodies.CompleteTask]
) -> list[dict[str, Any]]:
    outcomes = await asyncio.gather(
        *(
            service.queue.complete(
                item.task_id,
                item.worker_id,
                attempt=item.attempt,
                result=item.result,
                output_location=item.output_location,
                user_id=caller.user_id,
            )
            for item in items
        ),
        return_exceptions=True,
    )
    answers: list[dict[str, Any]] = []
    for item, outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, QueueError):
            answers.append({"task_id": item.task_id, "status_code": outcome.status, "error": outcome.message})
        elif isinstance(outcome, BaseException):
            raise outcome  # the database went away: 503 for the request (what had committed stays done)
        else:
            answers.append({"task_id": item.task_id, "status_code": 200, **outcome})
    return answers


async def fail_task(service: Service, caller: Caller, body: bodies.FailTask, request: Request) -> Response:
    row = await service.queue.fail(
        body.task_id,
        body.worker_id,
        attempt=body.attempt,
        error=body.error,
        retry=body.retry,
        user_id=caller.user_id,
    )
    return json_response(row)


async def release_task(
    service: Service, caller: Caller, body: bodies.ReleaseTask, request: Request
) -> Response:
    await service.queue.release(body.task_id, body.worker_id, attempt=body.attempt, user_id=caller.user_id)
    return json_response({"task_id": body.task_id, "status": "Queued"})


async def create_task(
    service: Service, caller: Caller, body: bodies.CreateTask, request: Request
) -> Response:
    row = await service.queue.create_task(
        body.project_id,
        body.task_type,
        {} if body.params is None else body.params,
        dependant_on=body.dependant_on,
        idempotency_key=body.idempotency_key,
        user_id=caller.user_id,
        max_attempts=body.max_attempts or limits.DEFAULT_MAX_ATTEMPTS,
    )
    return json_response(row, 201 if row["created"] else 200)


async def task_counts(
    service: Service, caller: Caller, body: bodies.TaskCounts, request: Request
) -> Response:
    rows = await service.queue.task_counts(caller.user_id)
    totals = {
        key: sum(r[key] for r in rows)
        for key in ("queued", "blocked", "in_progress", "complete", "failed", "cancelled")
    }
    scope = {"user_id": caller.user_id}  # None: every user's queue (the service key)
    return json_response({"scope": scope, "totals": totals, "by_task_type": rows})


# -- operators -------------------------------------------------------------------------------------


async def get_task(service: Service, caller: Caller, body: bodies.GetTask, request: Request) -> Response:
    """Every field of one task, its params and result included; 404 for another user's."""
    return _json_bytes((await service.queue.get_task(body.task_id, user_id=caller.user_id)).encode())


async def list_tasks(service: Service, caller: Caller, body: bodies.ListTasks, request: Request) -> Response:
    """A page of tasks (without params and result), newest first unless ``order`` is ``oldest``; pass
    ``next_cursor`` back as ``cursor`` for the next page (null: this was the last)."""
    limit = body.limit or limits.DEFAULT_LIST_TASKS
    rows = await service.queue.list_tasks(
        user_id=caller.user_id,
        status=body.status,
        task_type=body.task_type,
        project_id=body.project_id,
        worker_id=body.worker_id,
        oldest_first=body.order == "oldest",
        cursor=body.cursor,
        limit=limit,
    )
    next_cursor = orjson.dumps(rows[-1]["cursor"] if len(rows) == limit else None)
    tasks = ",".join(row["task"] for row in rows).encode()
    return _json_bytes(b'{"tasks":[' + tasks + b'],"next_cursor":' + next_cursor + b"}")


async def cancel_task(
    service: Service, caller: Caller, body: bodies.CancelTask, request: Request
) -> Response:
    task = await service.queue.cancel_task(body.task_id, reason=body.reason, user_id=caller.user_id)
    return _json_bytes(task.encode())


async def retry_task(service: Service, caller: Caller, body: bodies.RetryTask, request: Request) -> Response:
    return _json_bytes((await service.queue.retry_task(body.task_id, user_id=caller.user_id)).encode())


class Function(NamedTuple):
    handler: Handler
    body: type[Body]
    body_limit: int


FUNCTIONS: dict[str, Function] = {
    "claim-next-task": Function(claim_next_task, bodies.ClaimNextTask, limits.CLAIM_BODY_LIMIT),
    "claim-tasks": Function(claim_tasks, bodies.ClaimTasks, limits.BATCH_BODY_LIMIT),
    "heartbeat": Function(heartbeat, bodies.Heartbeat, limits.CLAIM_BODY_LIMIT),
    "heartbeat-tasks": Function(heartbeat_tasks, bodies.HeartbeatTasks, limits.BATCH_BODY_LIMIT),
    "complete-task": Function(complete_task, bodies.CompleteTask, limits.TASK_BODY_LIMIT),
    "complete-tasks": Function(complete_tasks, bodies.CompleteTasks, limits.BATCH_BODY_LIMIT),
    "fail-task": Function(fail_task, bodies.FailTask, limits.TASK_BODY_LIMIT),
    "release-task": Function(release_task, bodies.ReleaseTask, limits.CLAIM_BODY_LIMIT),
    "create-task": Function(create_task, bodies.CreateTask, limits.TASK_BODY_LIMIT),
    "task-counts": Function(task_counts, bodies.TaskCounts, limits.CLAIM_BODY_LIMIT),
    "get-task": Function(get_task, bodies.GetTask, limits.CLAIM_BODY_LIMIT),
    "list-tasks": Function(list_tasks, bodies.ListTasks, limits.CLAIM_BODY_LIMIT),
    "cancel-task": Function(cancel_task, bodies.CancelTask, limits.CLAIM_BODY_LIMIT),
    "retry-task": Function(retry_task, bodies.RetryTask, limits.CLAIM_BODY_LIMIT),
}
