"""Request bodies: read with a size limit, parsed as one JSON object, fields checked one by one.

Every problem is a ``BodyError`` with the HTTP status and a message naming the field.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from starlette.requests import Request


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a dict; an empty or absent body is ``{}``."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            too_large = int(length) > limit
        except ValueError:
            raise BodyError(400, "invalid Content-Length") from None
        if too_large:
            raise BodyError(413, f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyError(413, f"body larger than {limit} bytes")
    if not body.strip():
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BodyError(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BodyError(400, "body must be a JSON object")
    return data


def optional_uuid(body: dict[str, Any], name: str) -> uuid.UUID | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BodyError(400, f"{name} must be a UUID string")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BodyError(400, f"{name} must be a UUID") from None


def required_uuid(body: dict[str, Any], name: str) -> uuid.UUID:
    value = optional_uuid(body, name)
    if value is None:
        raise BodyError(400, f"{name} is required")
    return value


def optional_str(body: dict[str, Any], name: str, max_length: int = 200) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BodyError(400, f"{name} must be a non-empty string")
    if len(value) > max_length:
        raise BodyError(400, f"{name} is longer than {max_length} characters")
    return value


def required_str(body: dict[str, Any], name: str, max_length: int = 200) -> str:
    value = optional_str(body, name, max_length)
    if value is None:
        raise BodyError(400, f"{name} is required")
    return value


def optional_str_tuple(
    body: dict[str, Any], name: str, max_items: int = 20, max_length: int = 200
) -> tuple[str, ...] | None:
    """A non-empty list of non-empty strings, as a sorted tuple without repeats (a hashable key)."""
    value = body.get(name)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or len(value) > max_items
        or not all(isinstance(v, str) and 0 < len(v) <= max_length for v in value)
    ):
        raise BodyError(400, f"{name} must be a list of 1 to {max_items} non-empty strings")
    return tuple(sorted(set(value)))


def optional_int(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BodyError(400, f"{name} must be a whole number from {low} to {high}")
    return value


def optional_number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BodyError(400, f"{name} must be a number from {low:g} to {high:g}")
    return float(value)


def optional_bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise BodyError(400, f"{name} must be true or false")
    return value
