"""The queue layer: the only module of the service that runs SQL.

Each method is one call of a SQL function from ``sql/queries.sql``, one database round trip, in
autocommit. SQLSTATEs of class TC raised by those functions become ``QueueError`` subclasses; a database
that cannot be reached becomes ``DatabaseUnavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from taskclaim import limits
from taskclaim.batching import ClaimBatcher, CompletionBatcher
from taskclaim.exceptions import BadRequest, DatabaseUnavailable, queue_error
from taskclaim.pooler import prepare_threshold
from taskclaim.queries import query

log = logging.getLogger("taskclaim.queue")

Row = dict[str, Any]


def _primary_message(exc: psycopg.Error) -> str:
    return exc.diag.message_primary or str(exc).splitlines()[0]


class Queue:
    def __init__(
        self,
        pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]],
        *,
        max_inflight_batches: int = 1,
        claim_order: str = "oldest",
        max_in_progress_per_user: int | None = None,
    ) -> None:
        self.pool = pool
        self.round_robin = claim_order == "round-robin"
        self.cap = max_in_progress_per_user  # None: no cap
        self._last_user_served: uuid.UUID | None = None  # the round-robin turn of this process
        self._check_task: asyncio.Task[None] | None = None
        self.batcher = ClaimBatcher(self._claim_batch, max_inflight=max_inflight_batches)
        self.completions = CompletionBatcher(lambda params: self._rows("complete_batch", params))

    @classmethod
    def create_pool(
        cls,
        url: str,
        *,
        min_size: int = 4,
        max_size: int = 16,
        timeout: float = 5.0,
        pooler: str = "none",
    ) -> AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]:
        """``pooler="transaction"``: a PgBouncer or Supavisor in transaction mode is in the way, so no
        statement is prepared on the server (taskclaim.pooler)."""
        return AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "application_name": "taskclaim",
                "prepare_threshold": prepare_threshold(pooler),
            },
            open=False,
            name="taskclaim",
        )

    # -- plumbing ---------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[DictRow]]:
        try:
            async with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable("no database connection available") from exc
        except psycopg.OperationalError as exc:
            self._recheck_pool()
            raise DatabaseUnavailable(_primary_message(exc)) from exc
        except psycopg.Error as exc:
            error = queue_error(exc.sqlstate)
            if error is None:
                raise
            raise error(_primary_message(exc)) from exc

    def _recheck_pool(self) -> None:
        """After a connection broke, test the idle ones in the background so that the next requests
        do not each find another dead connection."""
        if self._check_task is None or self._check_task.done():
            self._check_task = asyncio.get_running_loop().create_task(self._check_pool())

    async def _check_pool(self) -> None:
        with contextlib.suppress(Exception):
            await self.pool.check()

    async def _rows(self, name: str, params: Mapping[str, Any]) -> list[Row]:
        async with self._connection() as conn:
            cur = await conn.execute(query(name), params)
            return await cur.fetchall()

    async def _claim_batch(self, params: Mapping[str, Any]) -> list[Row]:
        """taskclaim_claim_batch; its task_type-filtered form only when ``params`` has task_types. With
        round-robin order or a cap, a service claim of any type takes users in turn from where this
        process's last claim left off (taskclaim_claim_round_robin), skipping users at the cap; under a
        cap, a user's claim takes only what the user has room for (taskclaim_claim_user_capped)."""
        service = params["user_id"] is None
        if self.cap is not None and not service:
            return await self._rows(
                "claim_user_capped",
                {"task_types": None, **params, "claim_id": None, "max_in_progress": self.cap},
            )
        if (self.round_robin or self.cap is not None) and service and "task_types" not in params:
            rows = await self._rows(
                "claim_round_robin",
                {
                    "worker_ids": params["worker_ids"],
                    "after_user": self._last_user_served,
                    "lease_seconds": params["lease_seconds"],
                    "max_in_progress": self.cap,
                },
            )
            if rows:
                self._last_user_served = max(rows, key=lambda row: int(row["ordinal"]))["user_id"]
            for row in rows:
                del row["user_id"]
            return rows
        return await self._rows("claim_batch_by_type" if "task_types" in params else "claim_batch", params)

    async def _one(self, name: str, params: Mapping[str, Any]) -> Row | None:
        rows = await self._rows(name, params)
        return rows[0] if rows else None

    # -- the queue ----------------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._rows("ping", {})

    async def notify_probe(self, token: str) -> None:
        """A NOTIFY on the probe channel, sent as the triggers send theirs (taskclaim.notifier)."""
        await self._rows("notify_probe", {"token": token})

    async def claim(
        self,
        worker_id: str,
        *,
        user_id: uuid.UUID | None = None,
        lease_seconds: int = limits.DEFAULT_LEASE_SECONDS,
        claim_id: uuid.UUID | None = None,
        task_types: tuple[str, ...] | None = None,
    ) -> Row | None:
        """Claims without a claim_id are coalesced with concurrent ones (see ``taskclaim.batching``);
        ``task_types`` limits the claim to those types. A claim_id claim cannot be filtered."""
        if claim_id is None:
            return await self.batcher.claim(worker_id, user_id, lease_seconds, task_types)
        if task_types is not None:
            raise BadRequest("claim_id cannot be combined with task_types")
        if self.cap is not None and user_id is not None:
            rows = await self._rows(
                "claim_user_capped",
                {
                    "worker_ids": [worker_id],
                    "user_id": user_id,
                    "lease_seconds": lease_seconds,
                    "task_types": None,
                    "claim_id": claim_id,
                    "max_in_progress": self.cap,
                },
            )
            return {k: v for k, v in rows[0].items() if k != "ordinal"} if rows else None
        return await self._one(
            "claim",
            {
                "worker_id": worker_id,
                "user_id": user_id,
                "lease_seconds": lease_seconds,
                "claim_id": claim_id,
            },
        )

    async def claim_many(
        self,
        worker_id: str,
        count: int,
        *,
        user_id: uuid.UUID | None = None,
        lease_seconds: int = limits.DEFAULT_LEASE_SECONDS,
        task_types: tuple[str, ...] | None = None,
    ) -> list[Row]:
        """Up to ``count`` of the oldest ready tasks (of ``task_types``), oldest first, in one statement."""
        params: dict[str, Any] = {
            "worker_ids": [worker_id] * count,
            "user_id": user_id,
            "lease_seconds": lease_seconds,
        }
        if task_types is not None:
            params["task_types"] = list(task_types)
        rows = await self._claim_batch(params)
        rows.sort(key=lambda row: int(row["ordinal"]))
        return [{k: v for k, v in row.items() if k != "ordinal"} for row in rows]

    async def heartbeat(
        self,
        task_id: uuid.UUID,
        worker_id: str,
        *,
        attempt: int | None,
        lease_seconds: int | None,
        user_id: uuid.UUID | None,
    ) -> datetime:
        """Extend the lease by ``lease_seconds``, or by the length of the lease the task last got."""
        row = await self._one(
            "heartbeat",
            {
                "task_id": task_id,
                "worker_id": worker_id,
                "attempt": attempt,
                "lease_seconds": lease_seconds,
                "user_id": user_id,
            },
        )
        assert row is not None
        expires: datetime = row["lease_expires_at"]
        return expires

    async def heartbeat_many(self, items: list[Row], user_id: uuid.UUID | None) -> list[Row]:
        """Extend the leases of many held tasks in one statement (ids distinct; ``items`` as ``heartbeat``'s
        params): each row has ``lease_expires_at``, or ``error_code`` and ``error`` for that item alone."""
        params = {
            "task_ids": [i["task_id"] for i in items],
            "worker_ids": [i["worker_id"] for i in items],
            "attempts": [i["attempt"] for i in items],
            "lease_seconds": [i["lease_seconds"] for i in items],
            "user_id": user_id,
        }
        rows = await self._rows("heartbeat_batch", params)
        return sorted(rows, key=lambda row: int(row["ordinal"]))

    async def complete(
        self,
        task_id: uuid.UUID,
        worker_id: str,
        *,
        attempt: int | None,
        result: Any,
        output_location: str | None,
        user_id: uuid.UUID | None,
    ) -> Row:
        """Completions are coalesced with concurrent ones of the same scope (see ``taskclaim.batching``)."""
        item = {
            "task_id": task_id,
            "worker_id": worker_id,
            "attempt": attempt,
            "result": None if result is None else Jsonb(result),
            "output_location": output_location,
        }
        return await self.completions.complete(user_id, item)

    async def fail(
        self,
        task_id: uuid.UUID,
        worker_id: str,
        *,
        attempt: int | None,
        error: str | None,
        retry: bool,
        user_id: uuid.UUID | None,
    ) -> Row:
        row = await self._one(
            "fail",
            {
                "task_id": task_id,
                "worker_id": worker_id,
                "attempt": attempt,
                "error": error,
                "retry": retry,
                "user_id": user_id,
            },
        )
        assert row is not None
        return row

    async def release(
        self, task_id: uuid.UUID, worker_id: str, *, attempt: int | None, user_id: uuid.UUID | None
    ) -> None:
        await self._rows(
            "release",
            {"task_id": task_id, "worker_id": worker_id, "attempt": attempt, "user_id": user_id},
        )

    async def reap(self, *, limit: int = 1000, only_if_leader: bool = False) -> list[Row]:
        return await self._rows("reap_if_leader" if only_if_leader else "reap", {"limit": limit})

    async def create_task(
        self,
        project_id: uuid.UUID,
        task_type: str,
        params: Any,
        *,
        dependant_on: uuid.UUID | None = None,
        idempotency_key: str | None = None,
        user_id: uuid.UUID | None = None,
        max_attempts: int = limits.DEFAULT_MAX_ATTEMPTS,
    ) -> Row:
        row = await self._one(
            "create_task",
            {
                "project_id": project_id,
                "task_type": task_type,
                "params": Jsonb(params),
                "dependant_on": dependant_on,
                "idempotency_key": idempotency_key,
                "user_id": user_id,
                "max_attempts": max_attempts,
            },
        )
        assert row is not None
        return row

    async def task_counts(self, user_id: uuid.UUID | None) -> list[Row]:
        return await self._rows("task_counts", {"user_id": user_id})

    # -- operators: one task, pages of tasks, cancel, retry (each answered as JSON text by its SQL) -----

    async def get_task(self, task_id: uuid.UUID, *, user_id: uuid.UUID | None) -> str:
        return await self._text("get_task", {"task_id": task_id, "user_id": user_id})

    async def list_tasks(
        self,
        *,
        user_id: uuid.UUID | None,
        status: str | None = None,
        task_type: str | None = None,
        project_id: uuid.UUID | None = None,
        worker_id: str | None = None,
        oldest_first: bool = False,
        cursor: str | None = None,
        limit: int = limits.DEFAULT_LIST_TASKS,
    ) -> list[Row]:
        """A page: rows of (cursor, task) where task is the task's JSON text, newest first by default."""
        return await self._rows(
            "list_tasks",
            {
                "user_id": user_id,
                "status": status,
                "task_type": task_type,
                "project_id": project_id,
                "worker_id": worker_id,
                "oldest_first": oldest_first,
                "cursor": cursor,
                "limit": limit,
            },
        )

    async def cancel_task(self, task_id: uuid.UUID, *, reason: str | None, user_id: uuid.UUID | None) -> str:
        return await self._text("cancel_task", {"task_id": task_id, "reason": reason, "user_id": user_id})

    async def retry_task(self, task_id: uuid.UUID, *, user_id: uuid.UUID | None) -> str:
        return await self._text("retry_task", {"task_id": task_id, "user_id": user_id})

    async def _text(self, name: str, params: Mapping[str, Any]) -> str:
        row = await self._one(name, params)
        assert row is not None
        text: str = row["task"]
        return text

    async def gauges(self) -> Row:
        """Ready, in-progress and lease-expired task counts, read from the partial indexes."""
        row = await self._one("queue_gauges", {})
        assert row is not None
        return row

    async def ready_by_type(self) -> list[Row]:
        return await self._rows("ready_by_type", {})

    async def token_user(self, jti_hash: str) -> Row | None:
        return await self._one("token_user", {"jti_hash": jti_hash})

    # -- administration (the CLI) --------------------------------------------------------------------

    async def create_token(
        self, user_id: uuid.UUID, jti_hash: str, label: str | None, expires_at: datetime | None
    ) -> Row:
        row = await self._one(
            "create_token",
            {"user_id": user_id, "jti_hash": jti_hash, "label": label, "expires_at": expires_at},
        )
        assert row is not None
        return row

    async def list_tokens(self, user_id: uuid.UUID) -> list[Row]:
        return await self._rows("list_tokens", {"user_id": user_id})

    async def revoke_token(self, token_id: uuid.UUID) -> Row | None:
        return await self._one("revoke_token", {"id": token_id})

    async def delete_user(self, user_id: uuid.UUID) -> Row:
        """Remove a user's projects, their tasks and the user's tokens (plain PostgreSQL has no auth.users
        to cascade from)."""
        row = await self._one("delete_user", {"user_id": user_id})
        assert row is not None
        return row

    async def list_projects(self, user_id: uuid.UUID | None) -> list[Row]:
        return await self._rows("list_projects", {"user_id": user_id})

    async def create_project(
        self, user_id: uuid.UUID, *, project_id: uuid.UUID | None = None, name: str | None = None
    ) -> Row | None:
        return await self._one("create_project", {"id": project_id, "user_id": user_id, "name": name})
