"""Every default and limit of a request, in one place: the body parsers, the OpenAPI document, the CLI and
the client read them here, and the SQL functions of the direct path enforce the same numbers (the tests
check that each side refuses what the other refuses).

Standard library only: the worker client imports this module too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Leases: a claim holds its task this long unless it names another length; a heartbeat extends by the
# lease the task was last given.
DEFAULT_LEASE_SECONDS = 300
MAX_LEASE_SECONDS = 86_400

DEFAULT_MAX_ATTEMPTS = 3
MAX_MAX_ATTEMPTS = 1000
MAX_ATTEMPT = 2**31 - 1  # attempt numbers are PostgreSQL integers

MAX_BATCH_TASKS = 100  # claim-tasks' max_tasks
DEFAULT_LIST_TASKS = 50  # list-tasks' limit
MAX_LIST_TASKS = 500
MAX_CURSOR_LENGTH = 100
MAX_WAIT_SECONDS = 60  # a long poll waits at most this long

# Text fields: at least one character, at most this many, never a NUL (PostgreSQL text cannot hold one).
MAX_NAME_LENGTH = 200  # worker_id, task_type, idempotency_key
MAX_TASK_TYPES = 20  # task_types filters
MAX_ERROR_LENGTH = 8192
MAX_OUTPUT_LOCATION_LENGTH = 2048
MAX_COMPLETE_TASKS = 100  # items of one complete-tasks request
MAX_HEARTBEAT_TASKS = 100  # items of one heartbeat-tasks request

# JSON values (params, result): what PostgreSQL stores and every client reads back unchanged. Integral
# numbers must lie within ±(2**53 - 1), the range that I-JSON (RFC 7493) says every JSON reader holds
# exactly (JavaScript's Number included); objects and arrays nest at most MAX_JSON_DEPTH deep; no string
# or key holds a NUL (PostgreSQL's jsonb refuses \u0000).
MAX_SAFE_INTEGER = 2**53 - 1
MAX_JSON_DEPTH = 64

# Request bodies, in bytes.
CLAIM_BODY_LIMIT = 16 * 1024
TASK_BODY_LIMIT = 512 * 1024
BATCH_BODY_LIMIT = 2 * 1024 * 1024  # complete-tasks: many results in one body


def default_lease_seconds(env: Mapping[str, str]) -> int:
    """``TASKCLAIM_LEASE_SECONDS`` when it holds a usable lease, else the default: what the service and
    the client's fallback both claim with when a claim names no lease."""
    raw = env.get("TASKCLAIM_LEASE_SECONDS", "")
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= MAX_LEASE_SECONDS else DEFAULT_LEASE_SECONDS


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why ``value`` (decoded JSON) could not be stored and returned unchanged, or None when it can."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= max_depth:
                return f"nests deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key, member in item.items():
                    if not isinstance(key, str):
                        return "has a key that is not a string"
                    if "\x00" in key:
                        return "has a key with a NUL character"
                    stack.append((member, depth + 1))
            else:
                stack.extend((member, depth + 1) for member in item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "has a string with a NUL character"
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if abs(item) > MAX_SAFE_INTEGER:
                return f"has an integer outside ±{MAX_SAFE_INTEGER}"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "has a number that is not finite"
            if item.is_integer() and abs(item) > MAX_SAFE_INTEGER:
                return f"has an integer outside ±{MAX_SAFE_INTEGER}"
        else:
            return f"has a value of type {type(item).__name__}, which is not JSON"
    return None
