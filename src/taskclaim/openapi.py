"""The OpenAPI 3.1 document served at ``/openapi.json``: every route, its body and its status codes."""

from __future__ import annotations

from functools import cache
from typing import Any

from taskclaim import __version__

_UUID = {"type": "string", "format": "uuid"}
_ERROR = {
    "description": "error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            }
        }
    },
}
_COMMON_ERRORS = {
    "400": {**_ERROR, "description": "the body is not a JSON object, or a field is invalid"},
    "401": {**_ERROR, "description": "no Bearer token"},
    "403": {**_ERROR, "description": "the token is not accepted"},
    "405": {**_ERROR, "description": "method not allowed"},
    "413": {**_ERROR, "description": "body too large"},
    "500": {**_ERROR, "description": "a bug"},
    "503": {**_ERROR, "description": "the database is unreachable; see Retry-After"},
}
_HOLDER = {
    "task_id": _UUID,
    "worker_id": {"type": "string", "description": "the worker_id the claim returned"},
    "attempt": {
        "type": "integer",
        "description": "the attempt the claim returned (fences stale holders)",
    },
}
_TASK = {
    "type": "object",
    "properties": {
        "task_id": _UUID,
        "params": {"type": "object"},
        "task_type": {"type": "string"},
        "project_id": _UUID,
        "worker_id": {"type": "string"},
        "attempt": {"type": "integer"},
        "lease_expires_at": {"type": "string", "format": "date-time"},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _function(
    summary: str, body: dict[str, Any], required: list[str], answers: dict[str, Any]
) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "properties": body, "required": required}
                    }
                },
            },
            "responses": {**answers, **_COMMON_ERRORS},
        },
        "options": {
            "summary": "CORS preflight",
            "responses": {"204": {"description": "CORS headers"}},
        },
    }


@cache
def openapi_document() -> dict[str, Any]:
    lease = {"type": "integer", "minimum": 1, "description": "seconds; default 300"}
    conflict = {**_ERROR, "description": "the caller does not hold the task (any more)"}
    missing = {**_ERROR, "description": "no such task for this caller"}
    task_types = {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "minItems": 1,
        "maxItems": 20,
        "description": "claim only tasks of these task_types (not with claim_id)",
    }
    wait = {
        "type": "number",
        "minimum": 0,
        "maximum": 60,
        "description": "long poll: wait up to this long for a task before answering 204",
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "taskclaim", "version": __version__},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/functions/v1/claim-next-task": _function(
                "Claim the oldest ready task (the service: any user's; a user: their own)",
                {
                    "worker_id": {"type": "string"},
                    "lease_seconds": lease,
                    "claim_id": _UUID,
                    "wait_seconds": wait,
                    "task_types": task_types,
                },
                [],
                {
                    "200": _json(_TASK, "the claimed task"),
                    "204": {"description": "nothing to claim"},
                },
            ),
            "/functions/v1/claim-tasks": _function(
                "Claim up to max_tasks of the oldest ready tasks in one call, scoped like claim-next-task",
                {
                    "worker_id": {"type": "string"},
                    "max_tasks": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 100,
                        "description": "default 1",
                    },
                    "lease_seconds": lease,
                    "wait_seconds": wait,
                    "task_types": task_types,
                },
                [],
                {
                    "200": _json(
                        {"type": "object", "properties": {"tasks": {"type": "array", "items": _TASK}}},
                        "the claimed tasks, oldest first (at least one)",
                    ),
                    "204": {"description": "nothing to claim"},
                },
            ),
            "/functions/v1/heartbeat": _function(
                "Extend the lease of a held task",
                {**_HOLDER, "lease_seconds": lease},
                ["task_id", "worker_id"],
                {
                    "200": _json({"type": "object"}, "the new lease"),
                    "404": missing,
                    "409": conflict,
                },
            ),
            "/functions/v1/complete-task": _function(
                "Complete a held task",
                {**_HOLDER, "result": {}, "output_location": {"type": "string"}},
                ["task_id", "worker_id"],
                {"200": _json({"type": "object"}, "completed"), "404": missing, "409": conflict},
            ),
            "/functions/v1/fail-task": _function(
                "Fail a held task, or put it back in the queue with retry",
                {**_HOLDER, "error": {"type": "string"}, "retry": {"type": "boolean"}},
                ["task_id", "worker_id"],
                {
                    "200": _json({"type": "object"}, "failed or queued again"),
                    "404": missing,
                    "409": conflict,
                },
            ),
            "/functions/v1/release-task": _function(
                "Give a held task back to the queue without counting the attempt",
                _HOLDER,
                ["task_id", "worker_id"],
                {"200": _json({"type": "object"}, "queued again"), "404": missing, "409": conflict},
            ),
            "/functions/v1/create-task": _function(
                "Create a task in a project (a user: only in their own)",
                {
                    "project_id": _UUID,
                    "task_type": {"type": "string"},
                    "params": {"type": "object"},
                    "dependant_on": _UUID,
                    "idempotency_key": {"type": "string"},
                    "max_attempts": {"type": "integer", "minimum": 1},
                },
                ["project_id", "task_type"],
                {
                    "201": _json({"type": "object"}, "created"),
                    "200": _json({"type": "object"}, "the task this idempotency_key created before"),
                    "404": {**_ERROR, "description": "no such project"},
                },
            ),
            "/functions/v1/task-counts": _function(
                "Counts of tasks by state and task_type, scoped like the claim",
                {},
                [],
                {"200": _json({"type": "object"}, "the counts")},
            ),
            "/health": {
                "get": {
                    "summary": "200 while the database answers",
                    "responses": {"200": _json({"type": "object"}, "healthy"), "503": _ERROR},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of this process and of the queue",
                    "responses": {"200": {"description": "the text exposition format"}},
                }
            },
            "/": {
                "get": {
                    "summary": "the live dashboard (HTML); it reads task-counts with a token typed in",
                    "responses": {"200": {"description": "an HTML page"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "this document",
                    "responses": {"200": {"description": "OpenAPI"}},
                }
            },
        },
    }
