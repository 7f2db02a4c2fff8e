"""Wake-ups for long-poll claims: one LISTEN connection per server process on ``taskclaim_ready``.

The migrations' triggers NOTIFY with the owner's id whenever a task becomes claimable. A waiting claim of
that user, and every waiting claim of the service, is woken and tries again.

Whether notifications really arrive is checked, not assumed: every ``probe_seconds`` the process sends a
NOTIFY of its own through the pool (the way the triggers' notifications travel) and listens for it. While
the last probe came back (``arriving``), a waiter trusts its wake-up and does not poll; otherwise (no probe
heard yet, the LISTEN connection down, a pooler that swallows notifications) every waiter also retries
every ``fallback_seconds``. When the LISTEN connection comes back, every waiter retries once at once.

While notifications arrive, what a claim found is trusted too (an idle fleet then costs PostgreSQL nothing):
a long poll whose claim found nothing marks its scope **known empty** (``mark_empty``), and the next long
polls of that scope wait without claiming until a notification for the scope arrives, the connection is
lost, or ``EMPTY_TRUST_SECONDS`` have passed (a bound for what no trigger reports: a claim elsewhere that
locked a task and rolled back). Token changes arrive on ``taskclaim_tokens`` and go to ``on_token_change``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Hashable

import psycopg

from taskclaim.queries import query

log = logging.getLogger("taskclaim.notifier")
_NOTIFIERS: weakref.WeakSet[ReadyNotifier] = weakref.WeakSet()
EMPTY_TRUST_SECONDS = 300.0
_MAX_EMPTY_SCOPES = 10_000
EmptyKey = Hashable  # a scope and its filter: what one claim looked at


def server_stopping() -> None:
    """The server has begun its graceful shutdown: every waiting long poll of this process ends now
    (with what a last claim finds, usually nothing: 204), instead of holding the shutdown up."""
    for notifier in list(_NOTIFIERS):
        notifier.close_waits()


class ReadyNotifier:
    fallback_seconds = 5.0

    def __init__(
        self,
        url: str,
        *,
        enabled: bool = True,
        send_probe: Callable[[str], Awaitable[None]] | None = None,
        probe_seconds: float = 10.0,
    ) -> None:
        self._url = url
        self.enabled = enabled  # off: no LISTEN at all, waiters rely on their retry
        self._send_probe = send_probe
        self.probe_seconds = probe_seconds
        self._events: dict[uuid.UUID | None, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._probe_token: str | None = None  # the last probe sent
        self._heard_at: float | None = None  # when the last probe came back
        self.listening = False
        self.waiting = 0  # long polls waiting for a wake-up now (a gauge on /metrics)
        self._probe_now = asyncio.Event()
        self.closing = False  # the server is shutting down: no more waiting
        self.epoch = 0  # LISTEN connections made so far: what was trusted under an older one is not now
        self._empty: dict[EmptyKey, tuple[asyncio.Event, float]] = {}
        self.claims_skipped = 0  # claims not sent: their scope was known empty (a counter on /metrics)
        self.on_token_change: Callable[[str], None] | None = None
        _NOTIFIERS.add(self)

    def close_waits(self) -> None:
        self.closing = True
        self._wake_all()

    @property
    def arriving(self) -> bool:
        """True while notifications are proven to arrive: the last probe came back, recently."""
        if not self.listening or self._heard_at is None:
            return False
        return time.monotonic() - self._heard_at < 2.5 * self.probe_seconds

    def start(self) -> None:
        if not self.enabled:
            log.warning(
                "a transaction pooler is in the way and TASKCLAIM_DIRECT_URL is not set: no LISTEN;"
                " long polls wake up by retrying every %.0f s",
                self.fallback_seconds,
            )
            return
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._listen()))
        if self._send_probe is not None:
            self._tasks.append(loop.create_task(self._probe_every()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def event(self, scope: uuid.UUID | None) -> asyncio.Event:
        """The event that the next ready task of ``scope`` (a user, or None for the service) will set.
        Take it *before* trying to claim, so a task that arrives in between is not missed."""
        event = self._events.get(scope)
        if event is None:
            event = self._events[scope] = asyncio.Event()
        return event

    def mark_empty(self, key: EmptyKey, event: asyncio.Event) -> None:
        """A claim of ``key`` found nothing, and ``event`` (of its scope, taken before the claim) was not set
        when it answered: until the event is set, the scope is known to hold no ready task."""
        if event.is_set() or not self.arriving:
            return
        if len(self._empty) >= _MAX_EMPTY_SCOPES:
            self._empty.clear()
        self._empty[key] = (event, time.monotonic())

    def known_empty(self, key: EmptyKey) -> bool:
        """True when a claim of ``key`` would find nothing: see ``mark_empty``. Only while notifications are
        proven to arrive, and for at most ``EMPTY_TRUST_SECONDS``."""
        entry = self._empty.get(key)
        if entry is None:
            return False
        event, since = entry
        if event.is_set() or not self.arriving or time.monotonic() - since > EMPTY_TRUST_SECONDS:
            del self._empty[key]
            return False
        return True

    async def wait(self, event: asyncio.Event, at_most: float) -> None:
        """Until ``event`` is set or ``at_most`` seconds have passed; but every ``fallback_seconds``
        return early for a retry unless notifications are proven to arrive."""
        self.waiting += 1
        deadline = time.monotonic() + at_most
        try:
            while (left := deadline - time.monotonic()) > 0 and not self.closing:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, self.fallback_seconds)):
                        await event.wait()
                if event.is_set() or not self.arriving or self.closing:
                    return
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
                    await conn.execute(query("listen_probe"))
                    await conn.execute(query("listen_tokens"))
                    self.listening, delay, self._heard_at = True, 0.5, None
                    self.epoch += 1  # token changes may have been missed while nobody listened
                    self._wake_all()  # anything may have become ready while nobody listened
                    self._probe_now.set()
                    async for notification in conn.notifies():
                        if notification.channel == "taskclaim_probe":
                            if notification.payload == self._probe_token:
                                self._heard_at = time.monotonic()
                            continue
                        if notification.channel == "taskclaim_tokens":
                            if self.on_token_change is not None:
                                self.on_token_change(notification.payload)
                            continue
                        try:
                            self._wake(uuid.UUID(notification.payload))
                        except ValueError:
                            self._wake_all()
            except (psycopg.Error, OSError) as exc:
                log.warning("LISTEN connection lost (%s); retrying in %.1fs", exc, delay)
            self.listening = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _probe_every(self) -> None:
        """Send a probe every ``probe_seconds``, and at once whenever the LISTEN connection comes up."""
        assert self._send_probe is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.probe_seconds):
                    await self._probe_now.wait()
            self._probe_now.clear()
            if not self.listening:
                continue
            self._probe_token = uuid.uuid4().hex
            try:
                await self._send_probe(self._probe_token)
            except Exception as exc:  # the database is away: the next round tries again
                log.debug("probe not sent: %s", exc)
