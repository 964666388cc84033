"""The simulation's elastic parts: warm pool starts, the client's and workers' capacity raise,
high-resolution metrics; the fleet read from the elastic template."""

from __future__ import annotations

import dataclasses
from typing import Any

import aws_cdk as cdk
import pytest

from bench.scaling.cloudwatch import CloudWatch
from bench.scaling.policy import Fleet, Query, TargetTracking, read_fleet
from bench.scaling.search import high_resolution
from bench.scaling.world import Job, Simulation, World
from infra.config import config_from_context
from infra.stack import WebQueueWorkerStack


def world(**changes: Any) -> World:
    base = World(launch_seconds=150.0, warm_seconds=40.0, wait_seconds=20, batch_seconds=1.0,
                 flush_seconds=0.2, sqs_call_seconds=0.0, credits=False)
    return dataclasses.replace(base, **changes)


def elastic(**changes: Any) -> Fleet:
    base = Fleet(label="elastic", service="ec2", min_size=0, max_size=10, desired=0,
                 protects_busy=True, group_metrics=frozenset(), default_warmup=None,
                 default_cooldown=300.0, visibility_timeout=120.0, warm_pool=1,
                 raises_capacity=True)
    return dataclasses.replace(base, **changes)


def run(fleet: Fleet, jobs: list[Job], horizon: float = 3600.0) -> Any:
    return Simulation(fleet, world(), jobs, surge=(0.0, 0.0), horizon=horizon).run()


def test_the_first_job_waits_for_a_warm_start_only() -> None:
    outcome = run(elastic(), [Job(0.0, "k", 1.0, 0.0)])
    assert outcome.first_answer == pytest.approx(41.0)
    assert (outcome.warm_starts, outcome.cold_launches) == (1, 0)


def test_without_a_pool_it_waits_for_a_launch() -> None:
    outcome = run(elastic(warm_pool=0), [Job(0.0, "k", 1.0, 0.0)])
    assert outcome.first_answer == pytest.approx(151.0)
    assert (outcome.warm_starts, outcome.cold_launches) == (0, 1)


def test_without_the_raise_nothing_starts_from_zero() -> None:
    # no alarm, no raise: the job waits for ever (the alarm policy is the backstop)
    outcome = run(elastic(raises_capacity=False), [Job(0.0, "k", 1.0, 0.0)])
    assert outcome.first_answer is None and outcome.times == []


def test_a_burst_asks_for_every_worker_at_once_the_pool_first() -> None:
    jobs = [Job(0.0, "k", 1.0, 0.0) for _ in range(1000)]
    outcome = run(elastic(), jobs)
    assert outcome.timeline[0][3] == 10  # desired at t = 0: 1000 // 75 + 1, capped at 10
    assert (outcome.warm_starts, outcome.cold_launches) == (1, 9)
    assert outcome.first_answer == pytest.approx(41.0, abs=1.0)


def test_the_pool_refills_and_its_volume_time_is_counted() -> None:
    outcome = run(elastic(warm_pool=2), [Job(0.0, "k", 1.0, 0.0)], horizon=1000.0)
    # two stopped throughout but while one is started and replaced (150 s of install)
    assert outcome.pool_seconds == pytest.approx(2 * 1000 - 150)


def test_a_worker_with_full_batches_raises_capacity() -> None:
    # one worker already running, capacity raised by no client (jobs trickle in one by one)
    jobs = [Job(t * 0.01, "k", 0.5, 0.0) for t in range(400)]
    fleet = elastic(min_size=1, desired=1, warm_pool=0)
    outcome = Simulation(fleet, world(), jobs, surge=(4.0, 4.0), horizon=600.0).run()
    assert max(d for *_, d in outcome.timeline) > 1


def test_high_resolution_samples_every_ten_seconds() -> None:
    watch = CloudWatch(10.0, {"visible": 0.0}, resolution=10.0)
    query = Query("m", series="visible", metric_name="ApproximateNumberOfMessagesVisible",
                  period=10)
    for t, value in ((5.0, 3.0), (15.0, 7.0)):
        watch.record(t, {"visible": value})
    assert watch.datapoints(26.0, (query,), 2) == [7.0, 3.0]
    tracked = Fleet(label="t", service="ec2", min_size=1, max_size=2, desired=1,
                    protects_busy=True, group_metrics=frozenset(), default_warmup=None,
                    default_cooldown=300.0, visibility_timeout=120.0,
                    tracking=(TargetTracking("tt", (query,), 1.0, False, None),))
    fast = high_resolution(dataclasses.replace(tracked, tracking=(TargetTracking(
        "tt", (dataclasses.replace(query, period=60),), 1.0, False, None),)), "fast")
    assert fast.resolution == 10 and fast.metric_delay == 10


def test_the_elastic_template_reads_as_a_pool_with_the_raise(tmp_path) -> None:
    app = cdk.App(outdir=str(tmp_path))
    stack = WebQueueWorkerStack(app, config_from_context(
        {"min_workers": "0", "max_workers": "10", "warm_pool_size": "3"}))
    fleet = read_fleet(app.synth().get_stack_by_name(stack.stack_name).template, "ours")
    assert (fleet.min_size, fleet.max_size, fleet.desired) == (0, 10, 0)
    assert fleet.warm_pool == 3 and fleet.raises_capacity and fleet.protects_busy


def test_a_stale_idle_alarm_cannot_end_instances_launched_for_a_raise() -> None:
    """The idle alarm, still on pre-burst data, sets the group to 0 at 31 s: instances launched
    for the client's raise are protected until their first idle receive, so none is lost."""
    from bench.scaling.policy import Alarm, Step, StepPolicy

    visible = Query("m", series="visible", metric_name="ApproximateNumberOfMessagesVisible")
    to_min = StepPolicy("in", "ExactCapacity", (Step(None, 0.0, 0),), None, None, None)
    idle = Alarm("idle", (visible,), "LessThanThreshold", 1.0, 1, 1, "notBreaching", ("in",))
    jobs = [Job(0.0, "k", 1.0, 0.0) for _ in range(1000)]
    for protected, launches in ((True, 10), (False, 19)):
        fleet = elastic(alarms=(idle,), steps={"in": to_min}, launch_protected=protected)
        outcome = run(fleet, jobs)
        assert outcome.warm_starts + outcome.cold_launches == launches
        assert len(outcome.times) == 1000 and outcome.busy_terminated == 0
