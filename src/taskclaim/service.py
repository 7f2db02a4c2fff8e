"""What every handler shares: the settings, the queue, the authenticator, the wake-ups and the metrics."""

from __future__ import annotations

from taskclaim.auth import Authenticator
from taskclaim.config import Settings
from taskclaim.exceptions import BodyError
from taskclaim.jwks import JwksCache
from taskclaim.metrics import Metrics, SharedMetrics
from taskclaim.notifier import ReadyNotifier
from taskclaim.queue import Queue


class Service:
    """What the handlers share: settings, the queue and the authenticator."""

    def __init__(self, settings: Settings, queue: Queue, jwks: JwksCache, notifier: ReadyNotifier) -> None:
        self.settings = settings
        self.queue = queue
        self.jwks = jwks
        self.notifier = notifier
        self.auth = Authenticator(settings, queue, jwks, notifier)
        self.metrics = Metrics()
        self.shared_metrics: SharedMetrics | None = None  # the other processes' figures (serve --workers N)
        self.openapi = b""  # the OpenAPI document, rendered once at start

    def lease_seconds(self, requested: int | None) -> int:
        """The lease of a claim: the requested one within this service's maximum, else the default."""
        if requested is None:
            return self.settings.default_lease_seconds
        self.check_lease(requested)
        return requested

    def check_lease(self, requested: int | None) -> None:
        if requested is not None and requested > self.settings.max_lease_seconds:
            raise BodyError(400, f"lease_seconds: Expected `int` <= {self.settings.max_lease_seconds}")

    def wait_seconds(self, requested: float | None) -> float:
        if requested is not None and requested > self.settings.max_wait_seconds:
            raise BodyError(400, f"wait_seconds: Expected `float` <= {self.settings.max_wait_seconds:g}")
        return requested or 0.0
