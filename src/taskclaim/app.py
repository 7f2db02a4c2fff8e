"""The HTTP service as a Starlette app: the Edge Functions of ``handlers``, health, metrics, the
dashboard and the OpenAPI document, and the background work of each process (lease recovery, LISTEN).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from taskclaim.config import Settings
from taskclaim.exceptions import DatabaseUnavailable
from taskclaim.handlers import (
    CORS,
    FUNCTIONS,
    RETRY_AFTER_SECONDS,
    endpoint,
    error_response,
    json_response,
)
from taskclaim.jwks import JwksCache
from taskclaim.metrics import Metrics, SharedMetrics
from taskclaim.notifier import ReadyNotifier
from taskclaim.openapi import openapi_document
from taskclaim.queue import Queue
from taskclaim.service import Service

log = logging.getLogger("taskclaim.app")


async def health(request: Request) -> Response:
    service: Service = request.app.state.service
    try:
        await service.queue.ping()
    except DatabaseUnavailable as exc:
        return error_response(503, f"database unavailable: {exc}", {"Retry-After": RETRY_AFTER_SECONDS})
    notifier = service.notifier
    notifications = "arriving" if notifier.arriving else "not verified" if notifier.enabled else "off"
    return json_response({"status": "ok", "notifications": notifications})


# What each process counts and holds itself; with --workers N, the sums over the processes are shown.
PROCESS_COUNTERS = {
    "taskclaim_claim_statements_total": "Claim statements sent (coalesced batches).",
    "taskclaim_claims_coalesced_total": "Claims carried by those statements.",
    "taskclaim_complete_statements_total": "Completion statements sent (coalesced batches).",
    "taskclaim_completions_coalesced_total": "Completions carried by those statements.",
    "taskclaim_claims_skipped_total": "Long-poll claims not sent: their scope was known to be empty.",
}
PROCESS_GAUGES = {
    "taskclaim_pool_connections": "Open database connections (of every process of this service).",
    "taskclaim_pool_idle": "Idle database connections.",
    "taskclaim_pool_waiting": "Requests waiting for a connection.",
    "taskclaim_long_polls_waiting": "Long-poll claims waiting for a task now.",
    "taskclaim_listening": "Processes whose LISTEN connection for long polls is up (1 with one process).",
    "taskclaim_notifications_arriving": "Processes whose own probe NOTIFY came back lately.",
}


def process_figures(service: Service) -> dict[str, Any]:
    """This process's own figures: its request metrics, coalescers, pool and long polls."""
    stats = service.queue.pool.get_stats()
    claims, completions = service.queue.batcher.coalescer, service.queue.completions.coalescer
    counters = [
        claims.batches,
        claims.calls,
        completions.batches,
        completions.calls,
        service.notifier.claims_skipped,
    ]
    gauges = [
        stats.get("pool_size", 0),
        stats.get("pool_available", 0),
        stats.get("requests_waiting", 0),
        service.notifier.waiting,
        service.notifier.listening,
        service.notifier.arriving,
    ]
    return {
        "metrics": service.metrics.snapshot(),
        "counters": dict(zip(PROCESS_COUNTERS, counters, strict=True)),
        "gauges": dict(zip(PROCESS_GAUGES, gauges, strict=True)),
    }


async def metrics(request: Request) -> Response:
    service: Service = request.app.state.service
    figures = [process_figures(service)]
    if service.shared_metrics is not None:
        figures += service.shared_metrics.others()
    summed = Metrics.summed(f["metrics"] for f in figures)
    counters = [
        (name, text, float(sum(f["counters"].get(name, 0) for f in figures)))
        for name, text in PROCESS_COUNTERS.items()
    ]
    gauges = [
        (name, text, float(sum(f["gauges"].get(name, 0) for f in figures)))
        for name, text in PROCESS_GAUGES.items()
    ]
    labelled: list[tuple[str, str, str, dict[str, float]]] = []
    try:
        counts = await service.queue.gauges()
        by_type = await service.queue.ready_by_type()
    except DatabaseUnavailable:
        pass
    else:
        gauges += [
            ("taskclaim_tasks_ready", "Tasks claimable now.", counts["ready"]),
            ("taskclaim_tasks_in_progress", "Tasks held by a worker.", counts["in_progress"]),
            (
                "taskclaim_tasks_lease_expired",
                "Held tasks whose lease ran out, not yet recovered.",
                counts["lease_expired"],
            ),
            (
                "taskclaim_oldest_ready_task_age_seconds",
                "How long the oldest claimable task has waited (queue lag); 0 when none is ready.",
                float(counts["oldest_ready_age"] or 0),
            ),
        ]
        labelled.append(
            (
                "taskclaim_tasks_ready_by_type",
                "Tasks claimable now, by task_type (the 50 types with the most).",
                "task_type",
                {row["task_type"]: row["ready"] for row in by_type},
            )
        )
    return Response(summed.render(gauges, counters, labelled), media_type="text/plain; version=0.0.4")


# The page loads only its own script and style, talks only to this origin, and cannot be framed (its buttons
# retry and cancel tasks); the token it is given never leaves in a Referer.
DASHBOARD_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
DASHBOARD_FILES = {
    "/": ("dashboard.html", "text/html; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}


async def dashboard(request: Request) -> Response:
    """The dashboard's page, script and style; the page reads the queue with the token the viewer types in."""
    name, media_type = DASHBOARD_FILES[request.url.path]
    body = resources.files("taskclaim").joinpath("static", name).read_bytes()
    return Response(body, media_type=media_type, headers=DASHBOARD_HEADERS)


async def openapi(request: Request) -> Response:
    service: Service = request.app.state.service
    return Response(service.openapi, media_type="application/json", headers=CORS)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    return error_response(exc.status_code, exc.detail, headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error")


async def publish_figures(service: Service, shared: SharedMetrics) -> None:
    """Write this process's figures for the others of ``serve --workers N`` every second."""
    try:
        while True:
            shared.write(process_figures(service))
            await asyncio.sleep(1.0)
    finally:
        shared.remove()


async def reaper(queue: Queue, interval: float, metrics: Metrics) -> None:
    """Recover expired leases every ``interval`` seconds; one replica at a time does the work."""
    while True:
        await asyncio.sleep(interval)
        try:
            recovered = await queue.reap(only_if_leader=True)
        except DatabaseUnavailable:
            continue
        except Exception:
            log.exception("reaper failed")
            continue
        for row in recovered:
            metrics.reaped[str(row["status"])] += 1
            log.info(
                "lease expired: task %s is %s (attempt %s)",
                row["task_id"],
                row["status"],
                row["attempts"],
            )


def create_app(settings: Settings, database_url: str, shared_metrics: Path | None = None) -> Starlette:
    """The app of one process; ``shared_metrics`` is the directory the processes of ``serve --workers N``
    share their figures through."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = Queue.create_pool(
            database_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.pool_timeout_seconds,
            pooler=settings.pooler,
        )
        await pool.open(wait=False)
        queue = Queue(
            pool,
            max_inflight_batches=settings.claim_batches_inflight,
            claim_order=settings.claim_order,
            max_in_progress_per_user=settings.max_in_progress_per_user,
        )
        # LISTEN on the direct URL when there is one. Behind a transaction pooler without one, LISTEN
        # would hear nothing while reporting itself up: there is none, and long polls retry every 5 s.
        notifier = ReadyNotifier(
            settings.direct_url or database_url,
            enabled=bool(settings.direct_url) or settings.pooler != "transaction",
            send_probe=queue.notify_probe,
            probe_seconds=settings.probe_seconds,
        )
        jwks: JwksCache | None = None
        tasks = []
        # Whatever fails from here on closes what was opened: a pool left open kept the process alive
        # after a failed startup (uvicorn exits with 3 once the lifespan has unwound).
        try:
            jwks = JwksCache(static_jwks=settings.jwks_json, url=settings.jwks_url)
            notifier.start()
            service = app.state.service = Service(settings, queue, jwks, notifier)
            service.openapi = orjson.dumps(
                openapi_document(settings.max_lease_seconds, settings.max_wait_seconds)
            )
            if shared_metrics is not None:
                service.shared_metrics = SharedMetrics(shared_metrics)
                tasks.append(asyncio.create_task(publish_figures(service, service.shared_metrics)))
            if settings.reap_interval_seconds > 0:
                reaping = reaper(queue, settings.reap_interval_seconds, service.metrics)
                tasks.append(asyncio.create_task(reaping))
            yield
        finally:
            for task in tasks:
                task.cancel()
            await notifier.stop()
            if jwks is not None:
                await jwks.aclose()
            await pool.close()

    routes = [
        Route(f"/functions/v1/{name}", endpoint(name, *function), methods=["POST", "OPTIONS"])
        for name, function in FUNCTIONS.items()
    ]
    routes += [
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *(Route(path, dashboard, methods=["GET"]) for path in DASHBOARD_FILES),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )
