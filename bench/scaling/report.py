"""Tables and figures of the scaling simulation: one row per policy, one PNG per load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench._common import markdown_table, percentile
from bench.scaling.loads import (
    HOURS_PER_MONTH,
    IPV4_DOLLARS_PER_HOUR,
    T2_MICRO_DOLLARS_PER_HOUR,
    VOLUME_DOLLARS_PER_HOUR,
    Load,
)
from bench.scaling.policy import Fleet
from bench.scaling.world import Outcome

HEADERS = ["policy", "first answer s", "p50 s", "p95 s", "time to drain s", "instance-hours",
           "dollars", "month's dollars", "warm / cold starts", "busy instances terminated",
           "most instances"]
RUNNING_DOLLARS_PER_HOUR = (T2_MICRO_DOLLARS_PER_HOUR + IPV4_DOLLARS_PER_HOUR
                            + VOLUME_DOLLARS_PER_HOUR)


def idle_dollars_per_hour(fleet: Fleet) -> float:
    """An idle hour: the minimum's instances and the warm pool's stopped volumes."""
    return fleet.min_size * RUNNING_DOLLARS_PER_HOUR + fleet.warm_pool * VOLUME_DOLLARS_PER_HOUR


@dataclass(frozen=True)
class Row:
    """The printed figures of one policy under one load."""

    label: str
    first_answer: float | None
    p50: float
    p95: float
    p99: float
    max_backlog: int
    drain: float | None  # seconds from the surge's start; None if never drained
    instance_hours: float
    busy_terminated: int
    actions: int
    most_instances: int
    unfinished: int
    dollars: float = 0.0  # the simulated span: instances with their volumes, the pool's volumes
    month: float = 0.0  # a month with this load (see Load.repeats)
    starts: str = ""

    @classmethod
    def of(cls, outcome: Outcome, load: Load, fleet: Fleet | None = None) -> Row:
        times = outcome.times or [float("nan")]
        drain = None if outcome.drained_at is None else outcome.drained_at - load.surge[0]
        hours = outcome.instance_seconds / 3600
        dollars = (hours * RUNNING_DOLLARS_PER_HOUR
                   + outcome.pool_seconds / 3600 * VOLUME_DOLLARS_PER_HOUR)
        span = load.horizon / 3600
        if load.repeats and outcome.arrivals_seconds:
            # The load all month: the instances while jobs arrive (the settling hour after the
            # last arrival is left out), the pool's volumes throughout.
            during = outcome.arrivals_seconds / 3600
            month = HOURS_PER_MONTH * (
                outcome.arrivals_instance_seconds / 3600 / during * RUNNING_DOLLARS_PER_HOUR
                + outcome.pool_seconds / load.horizon * VOLUME_DOLLARS_PER_HOUR)
        else:
            idle = idle_dollars_per_hour(fleet) if fleet is not None else 0.0
            month = dollars + idle * (HOURS_PER_MONTH - span)
        return cls(outcome.label, outcome.first_answer, percentile(times, 0.5),
                   percentile(times, 0.95), percentile(times, 0.99), outcome.max_backlog, drain,
                   hours, outcome.busy_terminated, outcome.actions,
                   max((n for _, _, n, _ in outcome.timeline), default=0),
                   outcome.jobs - len(outcome.times), dollars, month,
                   f"{outcome.warm_starts} / {outcome.cold_launches}")

    def cells(self) -> list[str]:
        drain = "not drained" if self.drain is None else f"{self.drain:.0f}"
        if self.unfinished:
            drain += f" ({self.unfinished} jobs left)"
        first = "-" if self.first_answer is None else f"{self.first_answer:.1f}"
        return [self.label, first, f"{self.p50:.1f}", f"{self.p95:.1f}", drain,
                f"{self.instance_hours:.2f}", f"{self.dollars:.3f}", f"{self.month:.2f}",
                self.starts, str(self.busy_terminated), str(self.most_instances)]


def load_table(load: Load, jobs: int, rows: list[Row]) -> str:
    title = f"### {load.title} ({jobs} jobs)"
    return f"{title}\n\n{markdown_table(HEADERS, [r.cells() for r in rows])}"


def figure(load: Load, outcomes: list[Outcome], path: Path) -> None:
    """Backlog (visible messages) and instances over time, one line per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = load.horizon > 6 * 3600
    scale, unit = (3600.0, "hours") if hours else (60.0, "minutes")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.2), sharex=True, dpi=80)
    for outcome in outcomes:
        t = [p[0] / scale for p in outcome.timeline]
        top.plot(t, [p[1] for p in outcome.timeline], label=outcome.label, linewidth=1.1)
        bottom.step(t, [p[2] for p in outcome.timeline], where="post", linewidth=1.1)
    top.set_ylabel("jobs waiting")
    top.set_title(load.title, fontsize=11)
    top.legend(fontsize=8, loc="upper right")
    bottom.set_ylabel("instances")
    bottom.set_xlabel(unit)
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
