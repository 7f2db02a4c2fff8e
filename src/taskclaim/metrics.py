"""Prometheus metrics in the text exposition format, kept in process (one set per server process).

No client library: a few counters and one histogram are all the service needs, and rendering them is a
page of code. Names follow Prometheus conventions: ``_total`` counters, ``_seconds`` histograms.

With ``taskclaim serve --workers N`` each process writes its figures to a shared directory every second
(``SharedMetrics``), and whichever process answers a scrape adds its own live figures to the others'
last ones: counters and the histogram are the sums over the processes, and so are the process gauges
(connections, waiting long polls). A process that exits takes its figures with it.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, int], int] = defaultdict(int)
        self._buckets: defaultdict[str, list[int]] = defaultdict(lambda: [0] * (len(LATENCY_BUCKETS) + 1))
        self._sums: defaultdict[str, float] = defaultdict(float)
        self.reaped: defaultdict[str, int] = defaultdict(int)
        self.database_unavailable = 0

    def snapshot(self) -> dict[str, Any]:
        """This process's figures, as JSON can carry them."""
        return {
            "requests": [[route, status, count] for (route, status), count in self.requests.items()],
            "buckets": dict(self._buckets),
            "sums": dict(self._sums),
            "reaped": dict(self.reaped),
            "database_unavailable": self.database_unavailable,
        }

    @classmethod
    def summed(cls, snapshots: Iterable[dict[str, Any]]) -> Metrics:
        total = cls()
        for snap in snapshots:
            for route, status, count in snap["requests"]:
                total.requests[(route, int(status))] += count
            for route, counts in snap["buckets"].items():
                total._buckets[route] = [a + b for a, b in zip(total._buckets[route], counts, strict=True)]
            for route, seconds in snap["sums"].items():
                total._sums[route] += seconds
            for outcome, count in snap["reaped"].items():
                total.reaped[outcome] += count
            total.database_unavailable += snap["database_unavailable"]
        return total

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests[(route, status)] += 1
        self._buckets[route][bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._sums[route] += seconds

    def render(
        self,
        gauges: Iterable[tuple[str, str, float]] = (),
        counters: Iterable[tuple[str, str, float]] = (),
        labelled: Iterable[tuple[str, str, str, dict[str, float]]] = (),
    ) -> str:
        """The exposition text. Read at scrape time: ``gauges`` and ``counters`` as (name, help, value),
        ``labelled`` gauges as (name, help, label, {label value: value})."""
        out = [
            "# HELP taskclaim_http_requests_total HTTP requests by route and status.",
            "# TYPE taskclaim_http_requests_total counter",
        ]
        for (route, status), count in sorted(self.requests.items()):
            out.append(f'taskclaim_http_requests_total{{route="{route}",status="{status}"}} {count}')
        out += [
            "# HELP taskclaim_http_request_seconds Time to answer, by route.",
            "# TYPE taskclaim_http_request_seconds histogram",
        ]
        for route, counts in sorted(self._buckets.items()):
            cumulative = 0
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f'taskclaim_http_request_seconds_bucket{{route="{route}",le="{le}"}} {cumulative}')
            out.append(f'taskclaim_http_request_seconds_sum{{route="{route}"}} {self._sums[route]:.6f}')
            out.append(f'taskclaim_http_request_seconds_count{{route="{route}"}} {cumulative}')
        out += [
            "# HELP taskclaim_reaped_tasks_total Tasks whose lease expired, by what became of them.",
            "# TYPE taskclaim_reaped_tasks_total counter",
        ]
        for outcome, count in sorted(self.reaped.items()):
            out.append(f'taskclaim_reaped_tasks_total{{status="{outcome}"}} {count}')
        out += [
            "# HELP taskclaim_database_unavailable_total Requests answered 503: PostgreSQL was unreachable.",
            "# TYPE taskclaim_database_unavailable_total counter",
            f"taskclaim_database_unavailable_total {self.database_unavailable}",
        ]
        for name, help_text, value in counters:
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value:g}"]
        for name, help_text, value in gauges:
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        for name, help_text, label, values in labelled:
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            for key, value in sorted(values.items()):
                out.append(f'{name}{{{label}="{_escape(key)}"}} {value:g}')
        return "\n".join(out) + "\n"


class SharedMetrics:
    """The figures of the other processes of one ``serve --workers N``, through files in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / f"{os.getpid()}.json"

    def write(self, figures: dict[str, Any]) -> None:
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(json.dumps(figures))
        scratch.replace(self.path)  # a reader sees the old file or the new one, never half of one

    def others(self) -> list[dict[str, Any]]:
        found = []
        for path in self.directory.glob("*.json"):
            if path == self.path:
                continue
            with contextlib.suppress(OSError, ValueError):  # a process that just exited, or a torn read
                found.append(json.loads(path.read_text()))
        return found

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _escape(value: str) -> str:
    """A label value as the exposition format writes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
