"""Request bodies: one msgspec Struct per route, decoded and checked in one pass.

Each Struct says every field's type and limits (from ``taskclaim.limits``); unknown fields are refused, so
a typo (``task_type`` for ``task_types``) is a 400 rather than a claim of any type. The OpenAPI document
is generated from the same Structs, so it cannot say less than what is enforced. A field set to ``null``
is the same as a field left out.

Every problem is a ``BodyError`` (400, or 413 for size) whose message names the field.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import msgspec.inspect
import msgspec.structs
from starlette.requests import Request

from taskclaim import limits
from taskclaim.exceptions import BodyError

_NO_NUL = "^[^\x00]*$"


def _meta(max_length: int, description: str) -> msgspec.Meta:
    return msgspec.Meta(min_length=1, max_length=max_length, pattern=_NO_NUL, description=description)


WorkerId = Annotated[str, _meta(limits.MAX_NAME_LENGTH, "who holds the task; default: a new UUID")]
HolderId = Annotated[str, _meta(limits.MAX_NAME_LENGTH, "the worker_id the claim returned")]
TaskType = Annotated[str, _meta(limits.MAX_NAME_LENGTH, "the kind of task")]
IdempotencyKey = Annotated[
    str, _meta(limits.MAX_NAME_LENGTH, "a create-task retried with this key creates nothing new")
]
ErrorText = Annotated[str, _meta(limits.MAX_ERROR_LENGTH, "why the task failed")]
OutputLocation = Annotated[str, _meta(limits.MAX_OUTPUT_LOCATION_LENGTH, "where the output is")]
TaskTypes = Annotated[
    list[TaskType],
    msgspec.Meta(
        min_length=1,
        max_length=limits.MAX_TASK_TYPES,
        description="claim only tasks of these task_types (not with claim_id)",
    ),
]
LeaseSeconds = Annotated[
    int,
    msgspec.Meta(
        ge=1,
        le=limits.MAX_LEASE_SECONDS,
        description=f"how long the task is held; default {limits.DEFAULT_LEASE_SECONDS} for a claim, "
        "and for a heartbeat the lease the task was last given",
    ),
]
WaitSeconds = Annotated[
    float,
    msgspec.Meta(
        ge=0,
        le=limits.MAX_WAIT_SECONDS,
        description="long poll: wait up to this long for a task before answering 204",
    ),
]
Attempt = Annotated[
    int,
    msgspec.Meta(
        ge=1, le=limits.MAX_ATTEMPT, description="the attempt the claim returned (fences stale holders)"
    ),
]
MaxTasks = Annotated[int, msgspec.Meta(ge=1, le=limits.MAX_BATCH_TASKS, description="default 1")]
MaxAttempts = Annotated[
    int,
    msgspec.Meta(ge=1, le=limits.MAX_MAX_ATTEMPTS, description=f"default {limits.DEFAULT_MAX_ATTEMPTS}"),
]
_JSON_RULES = (
    f"integers within ±{limits.MAX_SAFE_INTEGER}, nesting at most {limits.MAX_JSON_DEPTH} deep, "
    "no NUL character in any string or key"
)
Params = Annotated[
    dict[str, Any], msgspec.Meta(description=f"the task's input: a JSON object; {_JSON_RULES}")
]
Result = Annotated[Any, msgspec.Meta(description=f"the task's output: any JSON; {_JSON_RULES}")]


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A route's body."""


class ClaimNextTask(Body):
    worker_id: WorkerId | None = None
    lease_seconds: LeaseSeconds | None = None
    claim_id: uuid.UUID | None = None
    wait_seconds: WaitSeconds | None = None
    task_types: TaskTypes | None = None


class Holder(Body):
    """The task and its holder, as the claim returned them."""

    task_id: uuid.UUID
    worker_id: HolderId
    attempt: Attempt | None = None


class Heartbeat(Holder):
    lease_seconds: LeaseSeconds | None = None


class HeartbeatTasks(Body):
    tasks: Annotated[
        list[Heartbeat],
        msgspec.Meta(
            min_length=1,
            max_length=limits.MAX_HEARTBEAT_TASKS,
            description="each a heartbeat body; each is answered on its own",
        ),
    ]


class CompleteTask(Holder):
    result: Result = None
    output_location: OutputLocation | None = None

    def __post_init__(self) -> None:
        _check_json("result", self.result)


class CompleteTasks(Body):
    tasks: Annotated[
        list[CompleteTask],
        msgspec.Meta(
            min_length=1,
            max_length=limits.MAX_COMPLETE_TASKS,
            description="each a complete-task body; each is answered on its own",
        ),
    ]


class ClaimTasks(Body):
    worker_id: WorkerId | None = None
    max_tasks: MaxTasks | None = None
    lease_seconds: LeaseSeconds | None = None
    wait_seconds: WaitSeconds | None = None
    task_types: TaskTypes | None = None
    complete: (
        Annotated[
            list[CompleteTask],
            msgspec.Meta(
                max_length=limits.MAX_COMPLETE_TASKS,
                description=(
                    "tasks this worker finished, each a complete-task body: they are completed before the"
                    " claim and answered in `completed`, and the answer is then always a 200"
                ),
            ),
        ]
        | None
    ) = None


class FailTask(Holder):
    error: ErrorText | None = None
    retry: bool = False


class ReleaseTask(Holder):
    pass


class CreateTask(Body):
    project_id: uuid.UUID
    task_type: TaskType
    params: Params | None = None
    dependant_on: uuid.UUID | None = None
    idempotency_key: IdempotencyKey | None = None
    max_attempts: MaxAttempts | None = None

    def __post_init__(self) -> None:
        _check_json("params", self.params)


class TaskCounts(Body):
    pass


Status = Literal["Queued", "In Progress", "Complete", "Failed", "Cancelled"]
Cursor = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=limits.MAX_CURSOR_LENGTH,
        pattern=_NO_NUL,
        description="next_cursor of the previous page",
    ),
]
ListLimit = Annotated[
    int,
    msgspec.Meta(ge=1, le=limits.MAX_LIST_TASKS, description=f"default {limits.DEFAULT_LIST_TASKS}"),
]


class GetTask(Body):
    task_id: uuid.UUID


class ListTasks(Body):
    status: Status | None = None
    task_type: TaskType | None = None
    project_id: uuid.UUID | None = None
    worker_id: HolderId | None = None
    order: Literal["newest", "oldest"] | None = None
    cursor: Cursor | None = None
    limit: ListLimit | None = None


class CancelTask(Body):
    task_id: uuid.UUID
    reason: ErrorText | None = None


class RetryTask(Body):
    task_id: uuid.UUID


def _check_json(name: str, value: Any) -> None:
    problem = limits.json_problem(value)
    if problem is not None:
        raise ValueError(f"{name} {problem}")  # msgspec turns it into a ValidationError


B = TypeVar("B", bound=Body)
_decoders: dict[type[Body], msgspec.json.Decoder[Any]] = {}


def decode(kind: type[B], raw: bytes) -> B:
    """``raw`` as a ``kind``; an empty body is ``{}``."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    if not raw.strip():
        raw = b"{}"
    try:
        body: B = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        if "got `float`" not in str(exc):
            raise BodyError(400, _message(str(exc))) from None
        body = _with_integral_floats(kind, raw, exc)
    except msgspec.DecodeError:
        raise BodyError(400, "body is not valid JSON") from None
    return body


def _with_integral_floats(kind: type[B], raw: bytes, first: msgspec.ValidationError) -> B:
    """``raw`` as a ``kind`` where an integer field holds a number like ``5.0``: JSON (and JSON Schema)
    call that the integer 5, msgspec's strict decoding does not. Only whole numbers are taken; the
    rarely needed second pass keeps every other body to one."""
    data = msgspec.json.decode(raw)
    if isinstance(data, dict):
        for field in msgspec.structs.fields(kind):
            value = data.get(field.encode_name)
            if isinstance(value, float) and value.is_integer() and _takes_int(field.type):
                data[field.encode_name] = int(value)
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise BodyError(400, _message(str(exc))) from None


def _takes_int(annotation: Any) -> bool:
    info = msgspec.inspect.type_info(annotation)
    options = info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)
    return any(
        isinstance(
            option.type if isinstance(option, msgspec.inspect.Metadata) else option, msgspec.inspect.IntType
        )
        for option in options
    )


def _message(text: str) -> str:
    """msgspec's wording, with the field first: ``worker_id: Expected `str` of length <= 200``."""
    detail, sep, where = text.rpartition(" - at `$")
    if not sep:
        return text
    path = where.rstrip("`").lstrip(".")
    if not path:
        return detail
    return f"{path}: {detail}"


async def read(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 past ``limit`` bytes (by its Content-Length, or as it streams)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise BodyError(400, "invalid Content-Length")
        if int(length) > limit:
            raise BodyError(413, f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyError(413, f"body larger than {limit} bytes")
    return bytes(body)
