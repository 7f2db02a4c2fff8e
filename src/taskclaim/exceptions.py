"""Every exception taskclaim raises on purpose, in one hierarchy, and the one table of SQLSTATEs.

::

    TaskclaimError
    ├── ConfigError             the environment or the command line says something unusable
    ├── EmbeddedDatabaseError   the embedded PostgreSQL could not be set up or started
    ├── DatabaseUnavailable     PostgreSQL cannot be reached now; retry later (HTTP 503)
    ├── QueueError              a queue call was refused; .status is the HTTP status
    │   ├── BadRequest          400
    │   ├── Forbidden           403
    │   ├── NotFound            404
    │   └── Conflict            409: the caller does not hold the task (any more)
    ├── BodyError               a request body that is too large (413) or not its route's (400)
    ├── AuthError               credentials missing (401) or not accepted (403)
    ├── ClientError             the worker client's call was refused (.status), or not served
    │   ├── ServiceUnavailable  neither the service nor the fallback could serve it
    │   └── NotHeld             409: the task is not held by this worker any more
    └── TaskFailed              raised by a worker's handler to fail its task with a message

Standard library only: the worker client imports this module too.
"""

from __future__ import annotations


class TaskclaimError(Exception):
    """Base of every error taskclaim raises on purpose."""


class ConfigError(TaskclaimError):
    """The environment or the command line says something taskclaim cannot use."""


class EmbeddedDatabaseError(TaskclaimError):
    """The embedded PostgreSQL could not be set up or started (its message holds the server's words)."""


class DatabaseUnavailable(TaskclaimError):
    """PostgreSQL cannot be reached right now; the call can be retried later."""


class QueueError(TaskclaimError):
    """A queue call was refused; ``status`` is the HTTP status that says why."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(QueueError):
    status = 400


class Forbidden(QueueError):
    status = 403


class NotFound(QueueError):
    status = 404


class Conflict(QueueError):
    """The task is not held by the caller any more (its lease was recovered, or it ended)."""

    status = 409


class BodyError(TaskclaimError):
    """A request body that is too large (413) or not what its route takes (400)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class AuthError(TaskclaimError):
    """A request's credentials were missing (401) or not accepted (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ClientError(TaskclaimError):
    """The worker client's call was refused (``status`` is the HTTP status), or neither the service nor
    the direct-RPC fallback could serve it."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ServiceUnavailable(ClientError):
    """The service did not serve the call and the fallback could not either (none is configured, its
    database is unreachable, or it cannot tell whose token this is)."""


class NotHeld(ClientError):
    """The task is not held by this worker any more (its lease was recovered, or it ended): 409."""


class TaskFailed(TaskclaimError):
    """Raised by a worker's handler to fail its task with this message (no traceback)."""


# The SQLSTATEs the queue's SQL functions raise (class TC, see supabase/migrations) and the PostgreSQL
# ones a caller's data can cause, as the refusal each means. Any other SQLSTATE is a bug.
SQLSTATE_ERRORS: dict[str, type[QueueError]] = {
    "TC400": BadRequest,
    "TC403": Forbidden,
    "TC404": NotFound,
    "TC409": Conflict,
    "23503": BadRequest,  # foreign key violation: a project or dependency that does not exist
    "42P01": BadRequest,  # unknown task table (the plan's p_table_name)
}


def queue_error(sqlstate: str | None) -> type[QueueError] | None:
    """The refusal a SQLSTATE means; class 22 (data exceptions: a value PostgreSQL cannot take) is a
    bad request too. None for anything else."""
    state = sqlstate or ""
    return SQLSTATE_ERRORS.get(state) or (BadRequest if state.startswith("22") else None)
