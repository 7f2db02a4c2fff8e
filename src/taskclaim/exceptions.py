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


class AuthError(TaskclaimError):
    """A request's credentials were missing (401) or not accepted (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
