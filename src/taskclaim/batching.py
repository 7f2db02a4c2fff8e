"""Claim coalescing: concurrent claims of the same scope share one statement, one round trip, one commit.

A claim that arrives while fewer than ``max_inflight`` batches are running is sent at once, alone: an idle
service adds no delay. Claims that arrive while the database is busy wait for the next batch, which takes
every waiting claim of one scope (the service, or one user, with one lease) up to ``max_batch``. So the
batch size follows the load, and PostgreSQL commits once per batch instead of once per claim.

Row n of a batch goes to the n-th waiting claim, oldest task first; when the queue holds fewer ready tasks
than claims, the rest get None (204).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Row = dict[str, Any]
Key = tuple[uuid.UUID | None, int]  # (user_id, lease_seconds)
RunBatch = Callable[[Mapping[str, Any]], Awaitable[list[Row]]]


class ClaimBatcher:
    def __init__(self, run_batch: RunBatch, *, max_batch: int = 64, max_inflight: int = 1) -> None:
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self._waiting: OrderedDict[Key, list[tuple[str, asyncio.Future[Row | None]]]] = OrderedDict()
        self._inflight = 0
        self._drains: set[asyncio.Task[None]] = set()  # held so the loop does not drop them mid-flight
        self.batches = 0  # counters for the metrics: statements sent, claims they carried
        self.claims = 0

    async def claim(self, worker_id: str, user_id: uuid.UUID | None, lease_seconds: int) -> Row | None:
        future: asyncio.Future[Row | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((user_id, lease_seconds), []).append((worker_id, future))
        if self._inflight < self.max_inflight:
            self._inflight += 1
            drain = asyncio.get_running_loop().create_task(self._drain())
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        return await future

    async def _drain(self) -> None:
        """Send batches while claims wait; one of at most ``max_inflight`` such loops."""
        try:
            while self._waiting:
                key, waiting = next(iter(self._waiting.items()))
                batch = [(w, f) for w, f in waiting[: self.max_batch] if not f.done()]
                rest = waiting[self.max_batch :]
                if rest:
                    self._waiting[key] = rest
                    self._waiting.move_to_end(key)  # other scopes take their turn
                else:
                    del self._waiting[key]
                if batch:
                    await self._send(key, batch)
        finally:
            self._inflight -= 1

    async def _send(self, key: Key, batch: list[tuple[str, asyncio.Future[Row | None]]]) -> None:
        user_id, lease_seconds = key
        params = {"worker_ids": [w for w, _ in batch], "user_id": user_id, "lease_seconds": lease_seconds}
        try:
            rows = await self._run_batch(params)
        except BaseException as exc:
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        self.claims += len(batch)
        by_ordinal = {row.pop("ordinal"): row for row in rows}
        for n, (_, future) in enumerate(batch, start=1):
            if not future.done():
                future.set_result(by_ordinal.get(n))
