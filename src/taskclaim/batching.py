"""Coalescing: concurrent calls of the same kind and scope share one statement, one round trip, one commit.

A call that arrives while fewer than ``max_inflight`` batches are running is sent at once, alone: an idle
service adds no delay. Calls that arrive while the database is busy wait for the next batch, which takes
every waiting call of one key (a scope such as the service or one user) up to ``max_batch``. So the batch
size follows the load, and PostgreSQL commits once per batch instead of once per call.

``ClaimBatcher`` coalesces claims (row n of ``taskclaim_claim_batch`` goes to the n-th waiting claim, oldest
task first; when fewer tasks are ready than claims, the rest get None, which is 204).
``CompletionBatcher`` coalesces completions (``taskclaim_complete_batch``): each gets its own answer or
its own error, so one stale holder does not fail the others.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from taskclaim.exceptions import DatabaseUnavailable, QueueError, queue_error

Row = dict[str, Any]
K = TypeVar("K", bound=Hashable)
I = TypeVar("I")  # noqa: E741 - an item of a batch
R = TypeVar("R")
RunBatch = Callable[[Mapping[str, Any]], Awaitable[list[Row]]]


def distinct_rounds(ids: Sequence[Hashable]) -> list[list[int]]:
    """The indexes of ``ids`` in rounds, in order, each id at most once a round: a repeated id goes in the
    next round, so one batch statement never sees a task twice and the repeat is answered after the first."""
    rounds: list[list[int]] = []
    seen: list[set[Hashable]] = []
    for index, key in enumerate(ids):
        n = next((n for n, keys in enumerate(seen) if key not in keys), len(rounds))
        if n == len(rounds):
            rounds.append([])
            seen.append(set())
        rounds[n].append(index)
        seen[n].add(key)
    return rounds


class Coalescer(Generic[K, I, R]):
    """Sends ``run(key, items)`` for the calls waiting under one key; ``run`` answers each item in order,
    with a result or an exception for that item alone. ``distinct(item)``, when given, keeps two items
    with the same value out of one batch (the later one goes in the next)."""

    def __init__(
        self,
        run: Callable[[K, list[I]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int = 64,
        max_inflight: int = 1,
        distinct: Callable[[I], Hashable] | None = None,
    ) -> None:
        self._run = run
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self._distinct = distinct
        self._waiting: OrderedDict[K, list[tuple[I, asyncio.Future[R]]]] = OrderedDict()
        self._inflight = 0
        self._drains: set[asyncio.Task[None]] = set()  # held so the loop does not drop them mid-flight
        self.batches = 0  # counters for the metrics: statements sent, calls they carried
        self.calls = 0

    async def submit(self, key: K, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append((item, future))
        if self._inflight < self.max_inflight:
            self._inflight += 1
            drain = asyncio.get_running_loop().create_task(self._drain())
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        return await future

    def _take(self, key: K) -> list[tuple[I, asyncio.Future[R]]]:
        """The next batch of ``key``; what stays waiting goes to the back, so other keys take turns."""
        batch: list[tuple[I, asyncio.Future[R]]] = []
        rest: list[tuple[I, asyncio.Future[R]]] = []
        seen: set[Hashable] = set()
        for item, future in self._waiting.pop(key):
            if future.done():  # its caller went away
                continue
            mark = None if self._distinct is None else self._distinct(item)
            if len(batch) >= self.max_batch or (mark is not None and mark in seen):
                rest.append((item, future))
                continue
            seen.add(mark)
            batch.append((item, future))
        if rest:
            self._waiting[key] = rest
        return batch

    async def _drain(self) -> None:
        """Send batches while calls wait; one of at most ``max_inflight`` such loops."""
        try:
            while self._waiting:
                key = next(iter(self._waiting))
                batch = self._take(key)
                if batch:
                    await self._send(key, batch)
        finally:
            self._inflight -= 1

    async def _send(self, key: K, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        try:
            answers = await self._run(key, [item for item, _ in batch])
        except DatabaseUnavailable as exc:  # the same for every item: each gets it
            self._settle_all(batch, exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                self._settle_all(batch, exc)
                return
            # One item may have failed the statement for all (bad data, a bug it triggers): each goes
            # again alone, so only that one gets the error and the others their own answers.
            for one in batch:
                await self._send(key, [one])
            return
        except BaseException as exc:  # cancelled: the callers are cancelled too
            self._settle_all(batch, exc)
            raise
        self.batches += 1
        self.calls += len(batch)
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    @staticmethod
    def _settle_all(batch: list[tuple[I, asyncio.Future[R]]], exc: BaseException) -> None:
        for _, future in batch:
            if future.done():
                continue
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)


ClaimKey = tuple[uuid.UUID | None, int, tuple[str, ...] | None]  # (user_id, lease_seconds, task_types)


class ClaimBatcher:
    """Claims of one scope, lease and task_type filter → the worker_ids waiting. ``run_batch`` gets
    ``task_types`` in its params only when the claims are filtered."""

    def __init__(self, run_batch: RunBatch, *, max_batch: int = 64, max_inflight: int = 1) -> None:
        self._run_batch = run_batch
        self.coalescer: Coalescer[ClaimKey, str, Row | None] = Coalescer(
            self._run, max_batch=max_batch, max_inflight=max_inflight
        )

    async def claim(
        self,
        worker_id: str,
        user_id: uuid.UUID | None,
        lease_seconds: int,
        task_types: tuple[str, ...] | None = None,
    ) -> Row | None:
        return await self.coalescer.submit((user_id, lease_seconds, task_types), worker_id)

    async def _run(self, key: ClaimKey, worker_ids: list[str]) -> list[Row | None]:
        user_id, lease_seconds, task_types = key
        params: dict[str, Any] = {
            "worker_ids": worker_ids,
            "user_id": user_id,
            "lease_seconds": lease_seconds,
        }
        if task_types is not None:
            params["task_types"] = list(task_types)
        by_ordinal = {row.pop("ordinal"): row for row in await self._run_batch(params)}
        return [by_ordinal.get(n) for n in range(1, len(worker_ids) + 1)]


class CompletionBatcher:
    """Completions of one scope (``user_id``); an item is the params of one ``taskclaim_complete``."""

    def __init__(self, run_batch: RunBatch, *, max_batch: int = 64, max_inflight: int = 1) -> None:
        self._run_batch = run_batch
        self.coalescer: Coalescer[uuid.UUID | None, Row, Row] = Coalescer(
            self._run, max_batch=max_batch, max_inflight=max_inflight, distinct=lambda item: item["task_id"]
        )

    async def complete(self, user_id: uuid.UUID | None, item: Row) -> Row:
        return await self.coalescer.submit(user_id, item)

    async def _run(self, user_id: uuid.UUID | None, items: list[Row]) -> list[Row | BaseException]:
        params = {
            "task_ids": [i["task_id"] for i in items],
            "worker_ids": [i["worker_id"] for i in items],
            "attempts": [i["attempt"] for i in items],
            "results": [i["result"] for i in items],
            "output_locations": [i["output_location"] for i in items],
            "user_id": user_id,
        }
        by_ordinal = {row.pop("ordinal"): row for row in await self._run_batch(params)}
        answers: list[Row | BaseException] = []
        for n in range(1, len(items) + 1):
            row = by_ordinal[n]
            code, message = row.pop("error_code"), row.pop("error")
            answers.append(row if code is None else (queue_error(code) or QueueError)(message))
        return answers
