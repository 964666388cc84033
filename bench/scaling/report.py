"""Tables and figures of the scaling simulation: one row per policy, one PNG per load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench._common import markdown_table, percentile
from bench.scaling.loads import T2_MICRO_DOLLARS_PER_HOUR, Load
from bench.scaling.world import Outcome

HEADERS = ["policy", "p50 s", "p95 s", "p99 s", "largest backlog", "time to drain s",
           "instance-hours", "dollars", "busy instances terminated", "scaling actions",
           "most instances"]


@dataclass(frozen=True)
class Row:
    """The printed figures of one policy under one load."""

    label: str
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

    @classmethod
    def of(cls, outcome: Outcome, load: Load) -> Row:
        times = outcome.times or [float("nan")]
        drain = None if outcome.drained_at is None else outcome.drained_at - load.surge[0]
        return cls(outcome.label, percentile(times, 0.5), percentile(times, 0.95),
                   percentile(times, 0.99), outcome.max_backlog, drain,
                   outcome.instance_seconds / 3600, outcome.busy_terminated, outcome.actions,
                   max((n for _, _, n, _ in outcome.timeline), default=0),
                   outcome.jobs - len(outcome.times))

    @property
    def dollars(self) -> float:
        return self.instance_hours * T2_MICRO_DOLLARS_PER_HOUR

    def cells(self) -> list[str]:
        drain = "not drained" if self.drain is None else f"{self.drain:.0f}"
        if self.unfinished:
            drain += f" ({self.unfinished} jobs left)"
        return [self.label, f"{self.p50:.1f}", f"{self.p95:.1f}", f"{self.p99:.1f}",
                str(self.max_backlog), drain, f"{self.instance_hours:.2f}",
                f"{self.dollars:.3f}", str(self.busy_terminated), str(self.actions),
                str(self.most_instances)]


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
