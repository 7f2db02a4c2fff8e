"""The exceptions taskclaim raises, one small hierarchy."""

from __future__ import annotations


class TaskclaimError(Exception):
    """Base of every error taskclaim raises on purpose."""


class ConfigError(TaskclaimError):
    """The environment or the command line says something taskclaim cannot use."""


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
