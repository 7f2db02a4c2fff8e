"""Long-poll claims: claim now, and when nothing was claimable wait for a task of the caller's scope to
become ready (``taskclaim.notifier``), until the wait is up or the client has gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from starlette.requests import Request

from taskclaim.auth import Caller
from taskclaim.exceptions import QueueError
from taskclaim.notifier import ReadyNotifier
from taskclaim.protocol import client_gone
from taskclaim.queue import Queue

log = logging.getLogger("taskclaim.handlers")


async def long_poll(
    notifier: ReadyNotifier,
    queue: Queue,
    caller: Caller,
    wait: float,
    request: Request,
    claim: Callable[[], Awaitable[list[dict[str, Any]]]],
    empty_key: Hashable | None = None,
) -> list[dict[str, Any]]:
    """``claim()`` once; with a ``wait`` in seconds, again whenever a task of the caller's scope becomes
    ready, until something is claimed or the time is up.

    ``empty_key`` names what ``claim()`` looks at (the scope and its filter; None for a claim that must
    always run, as a claim_id's retry). A long poll whose claim found nothing marks it known empty, and
    while it is (``ReadyNotifier.known_empty``) long polls of that key wait without claiming.

    A client that goes away is noticed: a long poll's wait ends at once, and tasks claimed for a client
    that has gone go straight back to the queue instead of waiting out their lease."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    gone: asyncio.Task[None] | None = None
    waiting: asyncio.Task[None] | None = None
    try:
        while True:
            # Only a long poll needs a wake-up; it is taken before the claim, so a task arriving now wakes us.
            woken = notifier.event(caller.user_id) if wait > 0 else None
            if woken is not None and empty_key is not None and notifier.known_empty(empty_key):
                notifier.claims_skipped += 1
                claimed = []
            else:
                claimed = await claim()
                if not claimed and woken is not None and empty_key is not None:
                    notifier.mark_empty(empty_key, woken)
            if claimed and ((gone is not None and gone.done()) or client_gone(request.scope)):
                await _give_back(queue, caller, claimed)
                return []
            remaining = deadline - loop.time()
            if claimed or woken is None or remaining <= 0 or notifier.closing:
                return claimed
            gone = gone or loop.create_task(_disconnected(request))
            waiting = loop.create_task(notifier.wait(woken, remaining))
            await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
            if gone.done():
                return []
    finally:
        for task in (gone, waiting):
            if task is not None and not task.done():
                task.cancel()


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (the body is read by now, so the next message is the disconnect)."""
    with contextlib.suppress(Exception):  # a receive channel that fails counts as gone too
        while (await request.receive())["type"] != "http.disconnect":
            pass


async def _give_back(queue: Queue, caller: Caller, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        with contextlib.suppress(QueueError):  # taken back already (its lease, an operator)
            await queue.release(
                row["task_id"], row["worker_id"], attempt=row["attempt"], user_id=caller.user_id
            )
    if rows:
        log.info("released %d task(s) claimed for a client that had gone", len(rows))
