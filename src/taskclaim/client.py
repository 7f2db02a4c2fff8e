"""The worker side: call the claim service, and fall back to the direct RPC when it is down (the plan's §4).

Importable without the server's dependencies: it needs httpx, and psycopg only when the direct-RPC
fallback goes through a database URL.

Moving a worker written against the plan's ``db_operations.py``::

    from taskclaim.client import get_oldest_queued_task_supabase   # was: from db_operations import ...

and set ``SUPABASE_EDGE_CLAIM_TASK_URL`` (or ``SUPABASE_URL``), ``SUPABASE_ACCESS_TOKEN`` and, for the
fallback, ``DATABASE_URL`` / ``SUPABASE_DB_URL``.

Which path served a call: ``TaskClient.last_path`` (``"edge"`` or ``"rpc"``), the counters in
``TaskClient.stats``, and an INFO line on the ``taskclaim.client`` logger whenever the fallback serves.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from taskclaim import limits
from taskclaim.batching import distinct_rounds
from taskclaim.exceptions import ClientError, NotHeld, QueueError, ServiceUnavailable, queue_error
from taskclaim.fallback import DirectRpc
from taskclaim.task import Task

__all__ = [
    "ClientError",
    "NotHeld",
    "ServiceUnavailable",
    "Task",
    "TaskClient",
    "get_oldest_queued_task_supabase",
]

log = logging.getLogger("taskclaim.client")

# Module-level settings, as the plan's db_operations.py has them; each falls back to the environment.
SUPABASE_EDGE_CLAIM_TASK_URL: str | None = None
SUPABASE_ACCESS_TOKEN: str | None = None
SUPABASE_CLIENT: Any = None  # a supabase-py client for the RPC fallback, if the worker has one
DATABASE_URL: str | None = None

# When the direct RPC serves instead of the service, the one rule: the service could not be reached,
# did not answer in time, or answered 5xx (down, overloaded, or a bug of its own); for a claim also 404,
# which no claim answers by itself (the function is not deployed there). 502/503/504 are tried again
# first, with backoff. Every other answer is the service's word on the call and is never overruled: 401
# and 403 above all, since a token the service refused must not be rescued by the fallback.
RETRYABLE_STATUSES = frozenset({502, 503, 504})
FALLBACK_STATUSES = frozenset({500, 501, 502, 503, 504, 505})
CLAIM_FALLBACK_STATUSES = FALLBACK_STATUSES | {404}


def _edge_claim_url() -> str | None:
    url = SUPABASE_EDGE_CLAIM_TASK_URL or os.getenv("SUPABASE_EDGE_CLAIM_TASK_URL")
    if url:
        return url
    base = os.getenv("SUPABASE_URL")
    return base.rstrip("/") + "/functions/v1/claim-next-task" if base else None


def _access_token() -> str | None:
    return SUPABASE_ACCESS_TOKEN or os.getenv("SUPABASE_ACCESS_TOKEN")


def _database_url() -> str | None:
    return DATABASE_URL or os.getenv("DATABASE_URL") or os.getenv("SUPABASE_DB_URL")


def configured() -> tuple[str | None, str | None, str | None, Any]:
    """What a ``TaskClient()`` made now would use: claim URL, token, database URL, supabase client."""
    return _edge_claim_url(), _access_token(), _database_url(), SUPABASE_CLIENT


class _Fallback(Exception):
    """Internal: the service did not serve this call; use the RPC path."""


class TaskClient:
    """Claim, heartbeat, complete, fail, release, create and count, over HTTP with the RPC fallback.

    ``claim_url`` is the service's ``.../functions/v1/claim-next-task``; the other calls go to their
    functions beside it. Thread-safe: one client may serve several worker threads.
    """

    def __init__(
        self,
        claim_url: str | None = None,
        access_token: str | None = None,
        *,
        database_url: str | None = None,
        supabase_client: Any = None,
        user_id: str | None = None,
        timeout: float = 15.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 2.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.claim_url = claim_url if claim_url is not None else _edge_claim_url()
        self.access_token = access_token or _access_token()
        self.database_url = database_url or _database_url()
        self.supabase_client = supabase_client if supabase_client is not None else SUPABASE_CLIENT
        self.user_id = user_id  # the RPC fallback claims only this user's tasks when set
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stats: Counter[str] = Counter()
        self.last_path: str | None = None
        self._http = httpx.Client(timeout=timeout, transport=transport)
        self._rpc = DirectRpc(self.database_url, self.supabase_client, self.access_token, user_id)
        self._stats_lock = threading.Lock()

    # -- the calls -----------------------------------------------------------------------------------

    def claim(
        self,
        *,
        worker_id: str | None = None,
        lease_seconds: int | None = None,
        claim_id: str | None = None,
        wait_seconds: float = 0,
        task_types: list[str] | None = None,
    ) -> Task | None:
        """The oldest ready task (of ``task_types``, when given), now held by ``worker_id``; None when
        nothing is claimable.

        With ``wait_seconds`` the service holds the request until a task is ready or the time is up (a
        long poll, woken by LISTEN/NOTIFY); the RPC fallback does not wait.
        """
        if task_types is not None:
            if claim_id is not None:
                raise ValueError("claim_id cannot be combined with task_types")
            tasks = self.claim_many(
                1,
                worker_id=worker_id,
                lease_seconds=lease_seconds,
                wait_seconds=wait_seconds,
                task_types=task_types,
            )
            return tasks[0] if tasks else None
        worker_id = worker_id or str(uuid.uuid4())
        body: dict[str, Any] = {"worker_id": worker_id}
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        if claim_id is not None:
            body["claim_id"] = claim_id
        if wait_seconds > 0:
            body["wait_seconds"] = wait_seconds
        try:
            response = self._post("claim-next-task", body, claim=True, extra_time=wait_seconds)
        except _Fallback as reason:
            self._note_fallback(reason)
            rows = self._rpc.claim(worker_id, lease_seconds, claim_id, str(reason))
            return Task.from_row(rows[0]) if rows else None
        return None if response is None else Task.from_row(response)

    def claim_many(
        self,
        max_tasks: int,
        *,
        worker_id: str | None = None,
        lease_seconds: int | None = None,
        wait_seconds: float = 0,
        task_types: list[str] | None = None,
    ) -> list[Task]:
        """Up to ``max_tasks`` of the oldest ready tasks in one call (one statement, one commit), all
        held by ``worker_id``; an empty list when nothing is claimable. The RPC fallback calls
        ``taskclaim_claim_batch``, and does not wait."""
        worker_id = worker_id or str(uuid.uuid4())
        body: dict[str, Any] = {"worker_id": worker_id, "max_tasks": max_tasks}
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        if wait_seconds > 0:
            body["wait_seconds"] = wait_seconds
        if task_types is not None:
            body["task_types"] = task_types
        try:
            response = self._post("claim-tasks", body, claim=True, extra_time=wait_seconds)
        except _Fallback as reason:
            self._note_fallback(reason)
            lease = lease_seconds or limits.default_lease_seconds(os.environ)
            rows = self._rpc.claim_batch(worker_id, max_tasks, lease, task_types, str(reason))
            return [Task.from_row(row) for row in rows]
        return [] if response is None else [Task.from_row(row) for row in response["tasks"]]

    def complete_and_claim(
        self,
        completions: Sequence[tuple[Task, Any]],
        max_tasks: int,
        *,
        worker_id: str | None = None,
        lease_seconds: int | None = None,
        wait_seconds: float = 0,
        task_types: list[str] | None = None,
    ) -> tuple[list[dict[str, Any] | ClientError], list[Task]]:
        """Complete what finished and claim up to ``max_tasks`` more in one request: the completions'
        outcomes (as ``complete_many`` gives them) and the claimed tasks. The completions are made before
        the claim, and before any wait. At most ``limits.MAX_COMPLETE_TASKS`` completions; the fallback
        makes them with ``taskclaim_complete_batch``, then claims."""
        if len(completions) > limits.MAX_COMPLETE_TASKS:
            raise ValueError(f"at most {limits.MAX_COMPLETE_TASKS} completions ride on one claim")
        worker_id = worker_id or str(uuid.uuid4())
        body: dict[str, Any] = {
            "worker_id": worker_id,
            "max_tasks": max_tasks,
            "complete": [self._holder(task) | {"result": result} for task, result in completions],
        }
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        if wait_seconds > 0:
            body["wait_seconds"] = wait_seconds
        if task_types is not None:
            body["task_types"] = task_types
        try:
            response = self._post("claim-tasks", body, claim=True, extra_time=wait_seconds)
        except _Fallback as reason:
            self._note_fallback(reason)
            outcomes = self._rpc_complete_many(completions, str(reason)) if completions else []
            lease = lease_seconds or limits.default_lease_seconds(os.environ)
            rows = self._rpc.claim_batch(worker_id, max_tasks, lease, task_types, str(reason))
            return outcomes, [Task.from_row(row) for row in rows]
        assert response is not None  # with `complete` the service always answers 200
        outcomes = [_outcome(a, a["status_code"], a.get("error")) for a in response["completed"]]
        return outcomes, [Task.from_row(row) for row in response["tasks"]]

    def heartbeat(self, task: Task, lease_seconds: int | None = None) -> str:
        """Extend the lease, by ``lease_seconds`` or else by the length of the lease the task has; returns
        the new expiry. Raises ``NotHeld`` when the task was taken back."""
        body = self._holder(task) | ({} if lease_seconds is None else {"lease_seconds": lease_seconds})
        answer = self._call(
            "heartbeat", body, "heartbeat", {**self._holder(task), "lease_seconds": lease_seconds}
        )
        return str(answer.get("lease_expires_at"))

    def complete(self, task: Task, result: Any = None, output_location: str | None = None) -> dict[str, Any]:
        body = self._holder(task) | {"result": result, "output_location": output_location}
        params = {**self._holder(task), "result": _jsonb(result), "output_location": output_location}
        return self._call("complete-task", body, "complete", params)

    def complete_many(self, items: Sequence[tuple[Task, Any]]) -> list[dict[str, Any] | ClientError]:
        """Complete several held tasks (each with its result) in one call per 100: ``complete-tasks``, or
        ``taskclaim_complete_batch`` on the fallback. Each item's outcome comes back in order: the answer,
        or the ``ClientError`` (``NotHeld`` for 409) that ``complete`` would have raised for it. Only a
        failure of the whole call raises."""
        outcomes: list[dict[str, Any] | ClientError] = []
        for start in range(0, len(items), limits.MAX_COMPLETE_TASKS):
            chunk = items[start : start + limits.MAX_COMPLETE_TASKS]
            body = {"tasks": [self._holder(task) | {"result": result} for task, result in chunk]}
            try:
                answer = self._post("complete-tasks", body)
            except _Fallback as reason:
                self._note_fallback(reason)
                outcomes += self._rpc_complete_many(chunk, str(reason))
                continue
            assert answer is not None
            outcomes += [_outcome(a, a["status_code"], a.get("error")) for a in answer["results"]]
        return outcomes

    def _rpc_complete_many(
        self, items: Sequence[tuple[Task, Any]], reason: str
    ) -> list[dict[str, Any] | ClientError]:
        def params(indexes: list[int]) -> dict[str, Any]:
            return {
                **self._holders([items[i][0] for i in indexes]),
                "results": [_jsonb(items[i][1]) for i in indexes],
                "output_locations": [None] * len(indexes),
            }

        return self._rpc_batch([task for task, _ in items], "complete_batch", params, reason)

    def heartbeat_many(
        self, tasks: Sequence[Task], lease_seconds: int | None = None
    ) -> list[dict[str, Any] | ClientError]:
        """Extend the leases of several held tasks in one call per 100 (``heartbeat-tasks``, or
        ``taskclaim_heartbeat_batch`` on the fallback). Each item's outcome comes back in order:
        ``{"task_id", "lease_expires_at"}``, or the ``ClientError`` (``NotHeld`` for 409) that ``heartbeat``
        would have raised for it. Only a failure of the whole call raises."""
        outcomes: list[dict[str, Any] | ClientError] = []
        extra = {} if lease_seconds is None else {"lease_seconds": lease_seconds}
        for start in range(0, len(tasks), limits.MAX_HEARTBEAT_TASKS):
            chunk = tasks[start : start + limits.MAX_HEARTBEAT_TASKS]
            try:
                answer = self._post("heartbeat-tasks", {"tasks": [self._holder(t) | extra for t in chunk]})
            except _Fallback as reason:
                self._note_fallback(reason)

                def params(indexes: list[int], chunk: Sequence[Task] = chunk) -> dict[str, Any]:
                    return {
                        **self._holders([chunk[i] for i in indexes]),
                        "lease_seconds": [lease_seconds] * len(indexes),
                    }

                outcomes += self._rpc_batch(chunk, "heartbeat_batch", params, str(reason))
                continue
            assert answer is not None
            outcomes += [_outcome(a, a["status_code"], a.get("error")) for a in answer["results"]]
        return outcomes

    def _rpc_batch(
        self,
        tasks: Sequence[Task],
        query_name: str,
        params: Callable[[list[int]], dict[str, Any]],
        reason: str,
    ) -> list[dict[str, Any] | ClientError]:
        """The fallback's batch statements: one per round (a task given twice goes in the next round), with
        ``params(indexes)`` for the items of the round; each item's outcome, in order."""
        outcomes: dict[int, dict[str, Any] | ClientError] = {}
        for this_round in distinct_rounds([task.task_id for task in tasks]):
            rows = {row["ordinal"]: row for row in self._rpc.call(query_name, params(this_round), reason)}
            for n, index in enumerate(this_round, start=1):
                row = rows[n]
                code, message = row.pop("error_code"), row.pop("error")
                row.pop("ordinal")
                status = 200 if code is None else (queue_error(code) or QueueError).status
                outcomes[index] = _outcome(_as_json(row), status, message)
        return [outcomes[i] for i in range(len(tasks))]

    @staticmethod
    def _holders(tasks: Sequence[Task]) -> dict[str, list[Any]]:
        return {
            "task_ids": [task.task_id for task in tasks],
            "worker_ids": [task.worker_id for task in tasks],
            "attempts": [task.attempt for task in tasks],
        }

    def fail(self, task: Task, error: str, *, retry: bool = False) -> dict[str, Any]:
        body = self._holder(task) | {"error": error, "retry": retry}
        return self._call("fail-task", body, "fail", dict(body))

    def release(self, task: Task) -> None:
        self._call("release-task", self._holder(task), "release", self._holder(task))

    def create(
        self,
        project_id: str,
        task_type: str,
        params: dict[str, Any] | None = None,
        *,
        dependant_on: str | None = None,
        idempotency_key: str | None = None,
        max_attempts: int = limits.DEFAULT_MAX_ATTEMPTS,
    ) -> dict[str, Any]:
        body = {
            "project_id": project_id,
            "task_type": task_type,
            "params": params or {},
            "dependant_on": dependant_on,
            "idempotency_key": idempotency_key,
            "max_attempts": max_attempts,
        }
        return self._call("create-task", body, "create_task", {**body, "params": _jsonb(params or {})})

    def counts(self) -> dict[str, Any]:
        try:
            answer = self._post("task-counts", {})
            assert answer is not None
            return answer
        except _Fallback as reason:
            self._note_fallback(reason)
            rows = self._rpc.call("task_counts", {}, str(reason))
            keys = ("queued", "blocked", "in_progress", "complete", "failed", "cancelled")
            return {"totals": {k: sum(r[k] for r in rows) for k in keys}, "by_task_type": rows}

    def close(self) -> None:
        self._http.close()
        self._rpc.close()

    def __enter__(self) -> TaskClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the HTTP path ---------------------------------------------------------------------------------

    def _url(self, function: str) -> str:
        assert self.claim_url is not None
        return self.claim_url.rsplit("/", 1)[0] + "/" + function

    def _post(
        self, function: str, body: dict[str, Any], *, claim: bool = False, extra_time: float = 0
    ) -> dict[str, Any] | None:
        """POST to the service; the answer's JSON, or None for 204. Raises ``_Fallback`` when the service
        could not serve the call (the rule above ``RETRYABLE_STATUSES``), ``ClientError``/``NotHeld``
        for its refusal."""
        if not self.claim_url:
            raise _Fallback("no service URL configured")
        headers = {"Authorization": f"Bearer {self.access_token}"} if self.access_token else {}
        fallback_statuses = CLAIM_FALLBACK_STATUSES if claim else FALLBACK_STATUSES
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                timeout = self._http.timeout.read or 15.0
                response = self._http.post(
                    self._url(function), json=body, headers=headers, timeout=timeout + extra_time
                )
            except httpx.TimeoutException as exc:
                # No answer in time: the call may have been served, so it is not repeated here.
                raise _Fallback(f"no answer from the service: {exc!r}") from exc
            except httpx.TransportError as exc:
                reason = f"service unreachable: {exc!r}"
            else:
                status = response.status_code
                if status in (200, 201):
                    self._count("edge")
                    return dict(response.json())
                if status == 204:
                    self._count("edge")
                    return None
                message = _error_message(response)
                if status not in fallback_statuses:
                    self._count("edge")
                    raise (NotHeld if status == 409 else ClientError)(message, status)
                reason = f"service answered {status}: {message}"
                if status not in RETRYABLE_STATUSES:
                    raise _Fallback(reason)
            if attempt < self.retries:
                time.sleep(min(delay, self.max_backoff) * random.uniform(0.5, 1.0))
                delay *= 2
        raise _Fallback(reason)

    def _call(
        self, function: str, body: dict[str, Any], query_name: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            answer = self._post(function, body)
            return answer or {}
        except _Fallback as reason:
            self._note_fallback(reason)
            rows = self._rpc.call(query_name, params, str(reason))
            return rows[0] if rows else {}

    def _note_fallback(self, reason: _Fallback) -> None:
        if not self._rpc.configured:
            raise ServiceUnavailable(
                f"{reason}; and no fallback is configured (set DATABASE_URL or SUPABASE_DB_URL)"
            ) from reason
        # A warning when the path changes (so a worker's log says it once), then one info line per call.
        switched = self.last_path != "rpc"
        self._count("rpc")
        self._count("fallback_reason:" + str(reason).split(":", 1)[0])
        if switched:
            log.warning("the service did not serve (%s): using the direct RPC until it is back", reason)
        else:
            log.info("served by the direct RPC: %s", reason)

    def _count(self, path: str) -> None:
        if path == "edge":
            if self.last_path == "rpc":
                log.warning("the service is back: claiming over HTTP again")
            log.debug("served by the service")
        with self._stats_lock:
            self.stats[path] += 1
            if path in ("edge", "rpc"):
                self.last_path = path

    @staticmethod
    def _holder(task: Task) -> dict[str, Any]:
        return {"task_id": task.task_id, "worker_id": task.worker_id, "attempt": task.attempt}


def _as_json(row: dict[str, Any]) -> dict[str, Any]:
    """A row of the direct path as the service would have sent it: ids and times as strings."""
    return {
        k: v.isoformat() if hasattr(v, "isoformat") else str(v) if isinstance(v, uuid.UUID) else v
        for k, v in row.items()
    }


def _outcome(answer: dict[str, Any], status: int, error: str | None) -> dict[str, Any] | ClientError:
    if status == 200:
        return {k: v for k, v in answer.items() if k != "status_code"}
    return (NotHeld if status == 409 else ClientError)(error or f"HTTP {status}", status)


def _jsonb(value: Any) -> Any:
    if value is None:
        return None
    from psycopg.types.json import Jsonb

    return Jsonb(value)


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text[:200]


# The plan's drop-in lives in taskclaim.dropin; importable from here, as the README and old workers have it.
from taskclaim.dropin import get_oldest_queued_task_supabase  # noqa: E402
