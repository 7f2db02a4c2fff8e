"""The OpenAPI 3.1 document served at ``/openapi.json``.

Request bodies are generated from the Structs in ``taskclaim.bodies``, which are also what the service
decodes with, so the document states every limit the service enforces. Answers are written out here; CI
holds the live service to them with Schemathesis.
"""

from __future__ import annotations

from typing import Any

import msgspec

from taskclaim import __version__, limits
from taskclaim.handlers import FUNCTIONS

_REF = "#/components/schemas/{name}"
_UUID = {"type": "string", "format": "uuid"}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"anyOf": [_TIME, {"type": "null"}]}
_STATUS = {"type": "string", "enum": ["Queued", "In Progress", "Complete", "Failed", "Cancelled"]}
_TEXT = {"type": "string", "pattern": "^[^\x00]*$"}

# A JSON value as the service takes it: no NUL in strings or keys, numbers within ±(2^53 - 1) (the service
# refuses only integral numbers beyond; stating it for every number keeps the schema simple and never
# lets through what would be refused). Nesting deeper than MAX_JSON_DEPTH is refused too.
_JSON_VALUE = {
    "description": f"any JSON, nested at most {limits.MAX_JSON_DEPTH} deep",
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "number", "minimum": -limits.MAX_SAFE_INTEGER, "maximum": limits.MAX_SAFE_INTEGER},
        _TEXT,
        {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
        {"$ref": "#/components/schemas/JsonObject"},
    ],
}
_JSON_OBJECT = {
    "type": "object",
    "propertyNames": _TEXT,
    "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
}


def _object(properties: dict[str, Any], description: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": list(properties),
        "properties": properties,
    }
    return _json(schema, description)


def _page(operation: str, summary: str, media_type: str) -> dict[str, Any]:
    answer = {"description": summary, "content": {media_type: {"schema": {"type": "string"}}}}
    return {"get": {"summary": summary, "operationId": operation, "responses": {"200": answer}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _object({"error": {"type": "string"}}, "error")
_COMMON_ERRORS = {
    "400": {**_ERROR, "description": "the body is not a JSON object of this route's fields"},
    "401": {**_ERROR, "description": "no Bearer token"},
    "403": {**_ERROR, "description": "the token is not accepted"},
    "405": {**_ERROR, "description": "another method"},
    "413": {**_ERROR, "description": "body too large"},
    "500": {**_ERROR, "description": "a bug"},
    "503": {
        **_ERROR,
        "description": "the database is unreachable; see Retry-After",
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    },
}
_TASK = {
    "type": "object",
    "required": ["task_id", "params", "task_type", "project_id", "worker_id", "attempt", "lease_expires_at"],
    "properties": {
        "task_id": _UUID,
        "params": {"type": "object"},
        "task_type": {"type": "string"},
        "project_id": _UUID,
        "worker_id": {"type": "string"},
        "attempt": {"type": "integer"},
        "lease_expires_at": _TIME,
    },
}
_NOTHING = {"204": {"description": "nothing to claim"}}
_HELD = {
    "404": {**_ERROR, "description": "no such task for this caller"},
    "409": {**_ERROR, "description": "the caller does not hold the task (any more)"},
}
_COUNTS = {name: {"type": "integer"} for name in ("queued", "blocked", "in_progress")} | {
    name: {"type": "integer"} for name in ("complete", "failed", "cancelled")
}

_CREATED = {
    "task_id": _UUID,
    "status": _STATUS,
    "blocked": {"type": "boolean"},
    "created": {"type": "boolean"},
}

# An item of a batch that was not done, and why.
_REFUSED_ITEM: dict[str, Any] = {
    "type": "object",
    "required": ["task_id", "status_code", "error"],
    "properties": {
        "task_id": _UUID,
        "status_code": {"type": "integer", "enum": [400, 404, 409]},
        "error": {"type": "string"},
    },
}
# complete-tasks' results, and claim-tasks' `completed`: one answer per item, in order.
_COMPLETED: dict[str, Any] = {
    "type": "array",
    "items": {
        "anyOf": [
            {
                "type": "object",
                "required": [
                    "task_id",
                    "status_code",
                    "status",
                    "generation_processed_at",
                ],
                "properties": {
                    "task_id": _UUID,
                    "status_code": {"type": "integer", "enum": [200]},
                    "status": _STATUS,
                    "generation_processed_at": _NULLABLE_TIME,
                },
            },
            _REFUSED_ITEM,
        ]
    },
}

ANSWERS: dict[str, tuple[str, dict[str, Any]]] = {
    "claim-next-task": (
        "Claim the oldest ready task (the service: any user's; a user: their own)",
        {"200": _json(_TASK, "the claimed task, now In Progress"), **_NOTHING},
    ),
    "claim-tasks": (
        "Claim up to max_tasks of the oldest ready tasks in one call, scoped like claim-next-task",
        {
            "200": _json(
                {
                    "type": "object",
                    "required": ["tasks"],
                    "properties": {
                        "tasks": {"type": "array", "items": _TASK},
                        "completed": _COMPLETED,
                    },
                },
                "the claimed tasks, oldest first (at least one unless the body had `complete`); with"
                " `complete`, each of its items' answers in `completed`, as complete-tasks answers them",
            ),
            **_NOTHING,
        },
    ),
    "heartbeat": (
        "Extend the lease of a held task",
        {"200": _object({"task_id": _UUID, "lease_expires_at": _TIME}, "the new lease"), **_HELD},
    ),
    "heartbeat-tasks": (
        "Extend the leases of many held tasks in one request; each item is answered on its own, in order",
        {
            "200": _object(
                {
                    "results": {
                        "type": "array",
                        "items": {
                            "anyOf": [
                                {
                                    "type": "object",
                                    "required": ["task_id", "status_code", "lease_expires_at"],
                                    "properties": {
                                        "task_id": _UUID,
                                        "status_code": {"type": "integer", "enum": [200]},
                                        "lease_expires_at": _TIME,
                                    },
                                },
                                _REFUSED_ITEM,
                            ]
                        },
                    }
                },
                "one answer per item, in the order given: the new lease (200), or why not (404, 409)",
            ),
        },
    ),
    "complete-task": (
        "Complete a held task",
        {
            "200": _object(
                {"task_id": _UUID, "status": _STATUS, "generation_processed_at": _NULLABLE_TIME}, "completed"
            ),
            **_HELD,
        },
    ),
    "complete-tasks": (
        "Complete many held tasks in one request; each item is answered on its own, in order",
        {
            "200": _object(
                {
                    "results": _COMPLETED,
                },
                "one answer per item, in the order given: completed (200), or why not (404, 409)",
            ),
        },
    ),
    "fail-task": (
        "Fail a held task, or put it back in the queue with retry",
        {
            "200": _object(
                {
                    "task_id": _UUID,
                    "status": _STATUS,
                    "attempts": {"type": "integer"},
                    "max_attempts": {"type": "integer"},
                },
                "failed, or queued again",
            ),
            **_HELD,
        },
    ),
    "release-task": (
        "Give a held task back to the queue without counting the attempt",
        {"200": _object({"task_id": _UUID, "status": _STATUS}, "queued again"), **_HELD},
    ),
    "create-task": (
        "Create a task in a project (a user: only in their own)",
        {
            "201": _object(_CREATED, "created"),
            "200": _object(_CREATED, "the task this idempotency_key created before"),
            "404": {**_ERROR, "description": "no such project"},
        },
    ),
    "task-counts": (
        "Counts of tasks by state and task_type, scoped like the claim",
        {
            "200": _object(
                {
                    "scope": {
                        "type": "object",
                        "required": ["user_id"],
                        "properties": {"user_id": {"anyOf": [_UUID, {"type": "null"}]}},
                        "description": "whose tasks: one user's, or every user's (null: the service key)",
                    },
                    "totals": {"type": "object", "required": list(_COUNTS), "properties": _COUNTS},
                    "by_task_type": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"task_type": {"type": "string"}, **_COUNTS},
                        },
                    },
                },
                "the counts",
            ),
        },
    ),
}


_NULLABLE = {
    "string": {"type": ["string", "null"]},
    "uuid": {"anyOf": [_UUID, {"type": "null"}]},
}
_TASK_FIELDS = {
    "task_id": _UUID,
    "status": _STATUS,
    "task_type": {"type": "string"},
    "project_id": _UUID,
    "user_id": _UUID,
    "dependant_on": _NULLABLE["uuid"],
    "blocked": {"type": "boolean"},
    "attempts": {"type": "integer"},
    "max_attempts": {"type": "integer"},
    "error": _NULLABLE["string"],
    "output_location": _NULLABLE["string"],
    "worker_id": _NULLABLE["string"],
    "lease_expires_at": _NULLABLE_TIME,
    "idempotency_key": _NULLABLE["string"],
    "created_at": _TIME,
    "updated_at": _TIME,
    "generation_started_at": _NULLABLE_TIME,
    "generation_processed_at": _NULLABLE_TIME,
}
_FULL_TASK: dict[str, Any] = {
    "type": "object",
    "required": [*_TASK_FIELDS, "params", "result"],
    "properties": {**_TASK_FIELDS, "params": {"type": "object"}, "result": {}},
}
_LISTED_TASK = {"type": "object", "required": list(_TASK_FIELDS), "properties": _TASK_FIELDS}
_ENDED = {"409": {**_ERROR, "description": "the task is not in a state this allows"}}
ANSWERS |= {
    "get-task": (
        "One task with every field, params and result included (a user: only their own)",
        {"200": _json(_FULL_TASK, "the task"), "404": _HELD["404"]},
    ),
    "list-tasks": (
        "A page of tasks, newest first, filtered; keyset pagination with next_cursor",
        {
            "200": _object(
                {"tasks": {"type": "array", "items": _LISTED_TASK}, "next_cursor": _NULLABLE["string"]},
                "the page (tasks without params and result); next_cursor null on the last",
            )
        },
    ),
    "cancel-task": (
        "Cancel a Queued or In Progress task (and, as always, its dependants)",
        {"200": _json(_FULL_TASK, "the task, now Cancelled"), "404": _HELD["404"], **_ENDED},
    ),
    "retry-task": (
        "Queue a Failed or Cancelled task again, attempts reset, with the dependants it cancelled",
        {
            "200": _json(
                {
                    **_FULL_TASK,
                    "required": [*_FULL_TASK["required"], "dependants_requeued"],
                    "properties": {**_FULL_TASK["properties"], "dependants_requeued": {"type": "integer"}},
                },
                "the task, Queued again",
            ),
            "404": _HELD["404"],
            **_ENDED,
        },
    ),
}


def _with_maximums(schema: Any, maximums: dict[tuple[str, float], float]) -> Any:
    """``schema`` with each (type, maximum) of ``maximums`` lowered to this service's setting: the
    leases (integers up to MAX_LEASE_SECONDS) and the waits (numbers up to MAX_WAIT_SECONDS)."""
    if isinstance(schema, dict):
        out = {key: _with_maximums(value, maximums) for key, value in schema.items()}
        key = (out.get("type"), out.get("maximum"))
        if key in maximums:
            out["maximum"] = maximums[key]
        return out
    if isinstance(schema, list):
        return [_with_maximums(value, maximums) for value in schema]
    return schema


def _json_fields(schema: dict[str, Any]) -> dict[str, Any]:
    """The Struct's ``params`` and ``result`` described as the JSON values the service takes."""
    properties = schema.get("properties", {})
    if "params" in properties:
        properties["params"] = {"anyOf": [{"$ref": "#/components/schemas/JsonObject"}, {"type": "null"}]}
    if "result" in properties:
        properties["result"] = {"$ref": "#/components/schemas/JsonValue"}
    return schema


def openapi_document(
    max_lease_seconds: int = limits.MAX_LEASE_SECONDS, max_wait_seconds: float = limits.MAX_WAIT_SECONDS
) -> dict[str, Any]:
    kinds = [function.body for function in FUNCTIONS.values()]
    refs, components = msgspec.json.schema_components(kinds, ref_template=_REF)
    components = {name: _json_fields(schema) for name, schema in components.items()}
    components = _with_maximums(
        components,
        {
            ("integer", limits.MAX_LEASE_SECONDS): max_lease_seconds,
            ("number", limits.MAX_WAIT_SECONDS): max_wait_seconds,
        },
    )
    components |= {"JsonValue": _JSON_VALUE, "JsonObject": _JSON_OBJECT}
    paths: dict[str, Any] = {}
    for name, ref in zip(FUNCTIONS, refs, strict=True):
        summary, answers = ANSWERS[name]
        paths[f"/functions/v1/{name}"] = {
            "post": {
                "summary": summary,
                "operationId": name,
                "security": [{"bearer": []}],
                "requestBody": {
                    # An empty body is {}: optional wherever the route has no required field.
                    "required": bool(components[ref["$ref"].rsplit("/", 1)[1]].get("required")),
                    "content": {"application/json": {"schema": ref}},
                },
                "responses": {**answers, **_COMMON_ERRORS},
            },
            "options": {
                "summary": "CORS preflight",
                "operationId": f"{name}-preflight",
                "responses": {"204": {"description": "CORS headers"}},
            },
        }
    paths |= {
        "/health": {
            "get": {
                "summary": "200 while the database answers",
                "operationId": "health",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {
                                "status": {"type": "string", "enum": ["ok"]},
                                "notifications": {
                                    "type": "string",
                                    "enum": ["arriving", "not verified", "off"],
                                    "description": "whether this process's probe NOTIFY came back lately",
                                },
                            },
                        },
                        "healthy",
                    ),
                    "503": _COMMON_ERRORS["503"],
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of this process and of the queue (no token: bind privately)",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "the text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/": _page(
            "dashboard",
            "the live dashboard: counts, throughput, failed and running tasks, a task table with retry and "
            "cancel; it calls the routes above with a token typed in",
            "text/html",
        ),
        "/dashboard.js": _page("dashboardScript", "the dashboard's script", "text/javascript"),
        "/dashboard.css": _page("dashboardStyle", "the dashboard's style", "text/css"),
        "/openapi.json": {
            "get": {
                "summary": "this document",
                "operationId": "openapi",
                "responses": {
                    "200": {
                        "description": "OpenAPI",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "taskclaim", "version": __version__},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }


def edge_contract() -> dict[str, Any]:
    """What the Deno Edge Functions check, from the same sources as the service: the request bodies'
    schemas, each route's body limit and every number of ``taskclaim.limits``. ``./dev schema`` writes
    it to ``supabase/functions/_shared/contract.json``; a test fails while that file is out of date."""
    document = openapi_document()
    bodies = {
        name: document["paths"][f"/functions/v1/{name}"]["post"]["requestBody"]["content"][
            "application/json"
        ]["schema"]["$ref"].rsplit("/", 1)[1]
        for name in FUNCTIONS
    }
    return {
        "generated": "by ./dev schema from taskclaim.limits and taskclaim.bodies; do not edit",
        "limits": {name: value for name, value in vars(limits).items() if name.isupper()},
        "functions": {
            name: {"body": bodies[name], "body_limit": function.body_limit}
            for name, function in FUNCTIONS.items()
        },
        "schemas": document["components"]["schemas"],
    }
