"""The policy search: BacklogScaling with other props, scored against the QPFS default.

Score of a candidate = the mean over the loads of (its p95 time in system / the QPFS default's)
+ (its instance-hours / the QPFS default's): latency and cost weigh the same, 2.0 is the anchor.
A candidate that lets scale-in end a busy worker is out. The daily ramp is left out (its steady
hours say little that the Poisson loads do not, and it takes most of the run time). Each load
runs with SEEDS arrival seeds and the figures are their means; scores within TIE of the best
count as equal (the measured service times alone move a score by about that much between runs).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import statistics
from typing import Any

from bench._common import markdown_table
from bench.scaling.policy import read_fleet
from bench.scaling.report import Row
from bench.scaling.world import Simulation

SEEDS = 3
TIE = 0.01
GRID = [{"jobs_per_worker": jobs, "idle_minutes": idle}
        for jobs in (50, 75, 100, 150, 200, 400) for idle in (1, 2, 5)]


def defaults() -> dict[str, Any]:
    from infra.scaling import BacklogScaling

    parameters = inspect.signature(BacklogScaling.__init__).parameters
    return {name: parameters[name].default for name in GRID[0]}


def search_table(policies: Any, services: dict[str, Any], world: Any, loads: list[Any],
                 seed: int) -> str:
    from bench.scaling.search import construct_templates

    loads = [load for load in loads if load.name != "daily"]
    templates = construct_templates(policies.ours.max_size, GRID)
    candidates = [read_fleet(t, _label(p)) for t, p in zip(templates, GRID, strict=True)]
    fleets = [policies.qpfs, policies.tracking, *candidates]
    rows: dict[str, dict[str, Row]] = {f.label: {} for f in fleets}
    for load in loads:
        runs = [load.jobs(services, seed + n) for n in range(SEEDS)]
        for fleet in fleets:
            rows[fleet.label][load.name] = _mean([Row.of(Simulation(
                fleet, world, jobs, surge=load.surge, horizon=load.horizon, seed=seed + n).run(),
                load) for n, jobs in enumerate(runs)])
    anchor = rows[policies.qpfs.label]
    scores = {label: _score(by_load, anchor) for label, by_load in rows.items()}
    feasible = [c.label for c in candidates
                if all(r.busy_terminated == 0 for r in rows[c.label].values())]
    best = min(feasible, key=scores.__getitem__)
    equal = {label for label in feasible if scores[label] <= scores[best] * (1 + TIE)}
    chosen = _label(defaults())
    table = []
    for label, by_load in rows.items():
        burst = by_load["burst"]
        mark = " (best)" if label == best else (" (equal)" if label in equal else "")
        mark += " (the stack's default)" if label == chosen else ""
        table.append([label + mark, f"{scores[label]:.3f}", f"{burst.drain:.0f}",
                      *[f"{r.p95:.0f} / {r.instance_hours:.2f}" for r in by_load.values()],
                      str(sum(r.busy_terminated for r in by_load.values()))])
    headers = ["policy", "score", "burst drain s",
               *[f"{load.name}: p95 s / inst-h" for load in loads], "busy terminated"]
    verdict = (f"the stack's default ({chosen}) is the best candidate or within {TIE:.0%} of it"
               if chosen in equal else
               f"MISMATCH: the best candidate is {best}, the stack's default {chosen}")
    return (f"### Policy search: BacklogScaling props (score: mean over loads of p95 and "
            f"instance-hours relative to the QPFS default, {SEEDS} seeds; lower is better)\n\n"
            f"{markdown_table(headers, table)}\n\n- {verdict}")


def _mean(rows: list[Row]) -> Row:
    """The seeds' mean of the figures the search shows (busy terminations: the sum)."""
    first = rows[0]
    return dataclasses.replace(
        first, p95=statistics.mean(r.p95 for r in rows),
        instance_hours=statistics.mean(r.instance_hours for r in rows),
        drain=statistics.mean(r.drain or math.inf for r in rows),
        busy_terminated=sum(r.busy_terminated for r in rows))


def _label(props: dict[str, Any]) -> str:
    return f"{props['jobs_per_worker']} jobs/worker, idle {props['idle_minutes']} min"


def _score(by_load: dict[str, Row], anchor: dict[str, Row]) -> float:
    return statistics.mean(
        row.p95 / anchor[name].p95 + row.instance_hours / anchor[name].instance_hours
        for name, row in by_load.items())
