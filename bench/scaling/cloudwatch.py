"""The simulated CloudWatch: one-minute samples seen after a delay, datapoints, alarm states."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from bench.scaling.policy import Alarm, Query, evaluate

MINUTE = 60.0
# Samples are taken at 60k + SAMPLE_PHASE s, alarms evaluated one second after a sample: the
# load starts at t = 0, half-way between two samples.
SAMPLE_PHASE = 30.0
_STATISTICS = {"Maximum": max, "Minimum": min, "Sum": sum, "SampleCount": len,
               "Average": lambda v: sum(v) / len(v)}


class CloudWatch:
    """Series sampled once per `resolution` (a minute, or 10 s for high-resolution metrics); an
    alarm sees a sample `delay` seconds after it is taken.

    Before t = 0 every series holds its `idle` value (the world ran idle before the load).
    """

    def __init__(self, delay: float, idle: Mapping[str, float],
                 resolution: float = MINUTE) -> None:
        self.delay = delay
        self.idle = dict(idle)
        self.resolution = resolution
        # Samples fall half-way between two load starts: at 30 s of each minute, 5 s of each 10.
        self.phase = SAMPLE_PHASE * resolution / MINUTE
        self.samples: dict[str, dict[int, float]] = {}
        self.state: dict[str, str] = {}

    def record(self, now: float, values: Mapping[str, float]) -> None:
        slot = round((now - self.phase) / self.resolution)
        for series, value in values.items():
            self.samples.setdefault(series, {})[slot] = float(value)

    def datapoints(self, now: float, queries: tuple[Query, ...],
                   count: int) -> list[float | None]:
        """The newest `count` datapoints of a metric or metric math, newest first."""
        newest = math.floor((now - self.delay - self.phase) / self.resolution)
        period = max(round(q.period / self.resolution) for q in queries)
        points = []
        for k in range(count):
            end = newest - k * period
            values: dict[str, float | None] = {}
            for query in queries:
                if query.series is not None:
                    values[query.id] = self._aggregate(query, end)
            for query in queries:
                if query.expression is not None:
                    values[query.id] = evaluate(query.expression, values)
            (result,) = [q for q in queries if q.return_data]
            points.append(values[result.id])
        return points

    def _aggregate(self, query: Query, end: int) -> float | None:
        series = self.samples.get(query.series, {})
        slots = range(end - round(query.period / self.resolution) + 1, end + 1)
        values = [series.get(m, self.idle[query.series]) if m < 0 else series.get(m)
                  for m in slots]
        values = [v for v in values if v is not None]
        return _STATISTICS[query.stat](values) if values else None

    def fires(self, now: float, name: str, queries: tuple[Query, ...],
              breaches: Callable[[float], bool], n: int, m: int,
              treat_missing: str) -> float | None:
        """Evaluate one alarm (m of n datapoints); its newest datapoint while in ALARM."""
        points = self.datapoints(now, queries, n)
        counted = []
        for value in points:
            if value is None:
                if treat_missing in ("breaching", "notBreaching"):
                    counted.append(treat_missing == "breaching")
            else:
                counted.append(breaches(value))
        if sum(counted) >= m:
            self.state[name] = "ALARM"
        elif counted:
            self.state[name] = "OK"
        elif treat_missing == "missing":
            self.state[name] = "INSUFFICIENT_DATA"
        if self.state.get(name) != "ALARM":
            return None
        # Auto Scaling actions run once a minute while the alarm stays in ALARM.
        return next((v for v in points if v is not None), None)


def breach_test(alarm: Alarm) -> Callable[[float], bool]:
    threshold = alarm.threshold
    return {
        "GreaterThanThreshold": lambda v: v > threshold,
        "GreaterThanOrEqualToThreshold": lambda v: v >= threshold,
        "LessThanThreshold": lambda v: v < threshold,
        "LessThanOrEqualToThreshold": lambda v: v <= threshold,
    }[alarm.comparison]
