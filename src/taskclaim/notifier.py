"""Wake-ups for long-poll claims: one LISTEN connection per server process on ``taskclaim_ready``.

The migrations' triggers NOTIFY with the owner's id whenever a task becomes claimable. A waiting claim of
that user, and every waiting claim of the service, is woken and tries again. Waiters also retry every
``fallback_seconds`` on their own, so a notification lost while the LISTEN connection was down (the
database restarted, say) delays a claim by at most that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import psycopg

from taskclaim.queries import query

log = logging.getLogger("taskclaim.notifier")


class ReadyNotifier:
    fallback_seconds = 5.0

    def __init__(self, url: str, *, enabled: bool = True) -> None:
        self._url = url
        self._enabled = enabled  # off: no LISTEN at all, waiters rely on their retry
        self._events: dict[uuid.UUID | None, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = False
        self.waiting = 0  # long polls waiting for a wake-up now (a gauge on /metrics)

    def start(self) -> None:
        if not self._enabled:
            log.warning(
                "a transaction pooler is in the way and TASKCLAIM_DIRECT_URL is not set: no LISTEN;"
                " long polls wake up by retrying every %.0f s",
                self.fallback_seconds,
            )
            return
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def event(self, scope: uuid.UUID | None) -> asyncio.Event:
        """The event that the next ready task of ``scope`` (a user, or None for the service) will set.
        Take it *before* trying to claim, so a task that arrives in between is not missed."""
        event = self._events.get(scope)
        if event is None:
            event = self._events[scope] = asyncio.Event()
        return event

    async def wait(self, event: asyncio.Event, at_most: float) -> None:
        self.waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(at_most, self.fallback_seconds)):
                    await event.wait()
        finally:
            self.waiting -= 1

    def _wake(self, user_id: uuid.UUID | None) -> None:
        for scope in {None, user_id}:
            event = self._events.pop(scope, None)
            if event is not None:
                event.set()

    def _wake_all(self) -> None:
        events, self._events = self._events, {}
        for event in events.values():
            event.set()

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, application_name="taskclaim-listen"
                ) as conn:
                    await conn.execute(query("listen_ready"))
                    self.listening, delay = True, 0.5
                    self._wake_all()  # anything may have become ready while nobody listened
                    async for notification in conn.notifies():
                        try:
                            self._wake(uuid.UUID(notification.payload))
                        except ValueError:
                            self._wake_all()
            except (psycopg.Error, OSError) as exc:
                log.warning("LISTEN connection lost (%s); retrying in %.1fs", exc, delay)
            self.listening = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
