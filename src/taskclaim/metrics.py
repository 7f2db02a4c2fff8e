"""Prometheus metrics in the text exposition format, kept in process (one set per server process).

No client library: a few counters and one histogram are all the service needs, and rendering them is a
page of code. Names follow Prometheus conventions: ``_total`` counters, ``_seconds`` histograms.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, int], int] = defaultdict(int)
        self._buckets: defaultdict[str, list[int]] = defaultdict(lambda: [0] * (len(LATENCY_BUCKETS) + 1))
        self._sums: defaultdict[str, float] = defaultdict(float)
        self.reaped: defaultdict[str, int] = defaultdict(int)
        self.database_unavailable = 0

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


def _escape(value: str) -> str:
    """A label value as the exposition format writes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
