"""The scaling policy (infra/scaling.py) in the synthesized template, and the simulator's parts
(bench/scaling/*.py) on cases small enough to check by hand; `-m bench.scaling --quick` runs."""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_sqs as sqs
from hypothesis import given
from hypothesis import strategies as st

from bench.scaling.policy import (
    Alarm,
    Fleet,
    PolicyError,
    Query,
    Step,
    StepPolicy,
    TargetTracking,
    evaluate,
    pick_step,
    read_fleet,
)
from bench.scaling.world import Job, Simulation, World
from infra.config import config_from_context
from infra.scaling import LAUNCH_TIME, BacklogScaling
from infra.stack import WebQueueWorkerStack

DEFAULTS = {name: p.default
            for name, p in inspect.signature(BacklogScaling.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


def synth(max_workers: int, stack_name: str) -> dict[str, Any]:
    app = cdk.App()
    stack = WebQueueWorkerStack(app, config_from_context(
        {"max_workers": str(max_workers), "stack_name": stack_name}))
    return app.synth().get_stack_by_name(stack.stack_name).template


@pytest.fixture(scope="module")
def scaled() -> dict[str, Any]:
    return synth(10, "wqw-scaling-ten")


@pytest.fixture(scope="module")
def single() -> dict[str, Any]:
    return synth(1, "wqw-scaling-one")


def of_type(template: dict[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == cfn_type}


def requests_queue(template: dict[str, Any]) -> str:
    (name,) = [k for k, v in of_type(template, "AWS::SQS::Queue").items()
               if "RedrivePolicy" in v["Properties"]]
    return name


def alarm_and_policy(template: dict[str, Any], comparison: str) -> tuple[dict, dict]:
    alarms = [a["Properties"] for a in of_type(template, "AWS::CloudWatch::Alarm").values()
              if a["Properties"]["ComparisonOperator"] == comparison]
    (alarm,) = [a for a in alarms if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"]
    (action,) = alarm["AlarmActions"]
    return alarm, template["Resources"][action["Ref"]]["Properties"]


# ---- the policy in the template -------------------------------------------------------------

def test_one_worker_stays_one_instance_without_scaling(single: dict[str, Any]) -> None:
    (group,) = of_type(single, "AWS::AutoScaling::AutoScalingGroup").values()
    assert (group["Properties"]["MinSize"], group["Properties"]["MaxSize"]) == ("1", "1")
    assert "DefaultInstanceWarmup" not in group["Properties"]
    assert of_type(single, "AWS::AutoScaling::ScalingPolicy") == {}
    fleet = read_fleet(single, "one")
    assert (fleet.min_size, fleet.max_size, fleet.scales) == (1, 1, False)


def test_scale_out_alarm_watches_the_request_backlog_every_minute(scaled: dict) -> None:
    alarm, policy = alarm_and_policy(scaled, "GreaterThanOrEqualToThreshold")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {
        "Fn::GetAtt": [requests_queue(scaled), "QueueName"]}}]
    assert (alarm["Period"], alarm["Statistic"], alarm["EvaluationPeriods"]) == (
        60, "Maximum", 1)
    assert alarm["Threshold"] == DEFAULTS["jobs_per_worker"]
    assert alarm["TreatMissingData"] == "notBreaching"
    assert (policy["PolicyType"], policy["AdjustmentType"]) == ("StepScaling", "ExactCapacity")


def _capacity_for(template: dict[str, Any], waiting: int) -> int | None:
    """What the scale-out policy asks for at `waiting` visible messages (AWS's step rules)."""
    alarm, policy = alarm_and_policy(template, "GreaterThanOrEqualToThreshold")
    if waiting < alarm["Threshold"]:
        return None
    step = pick_step(_steps(policy), waiting - alarm["Threshold"], below=False)
    return int(step.adjustment)


def _steps(policy: dict[str, Any]) -> StepPolicy:
    return StepPolicy("p", policy["AdjustmentType"], tuple(
        Step(s.get("MetricIntervalLowerBound"), s.get("MetricIntervalUpperBound"),
             s["ScalingAdjustment"]) for s in policy["StepAdjustments"]), None, None, None)


@given(waiting=st.integers(min_value=0, max_value=5000))
def test_one_more_worker_per_jobs_per_worker_waiting(scaled: dict, waiting: int) -> None:
    per_worker = DEFAULTS["jobs_per_worker"]
    expected = None if waiting < per_worker else min(10, 1 + waiting // per_worker)
    assert _capacity_for(scaled, waiting) == expected


def test_steps_leave_no_gap_and_end_unbounded(scaled: dict) -> None:
    _, policy = alarm_and_policy(scaled, "GreaterThanOrEqualToThreshold")
    steps = sorted(policy["StepAdjustments"], key=lambda s: s["MetricIntervalLowerBound"])
    assert steps[0]["MetricIntervalLowerBound"] == 0
    for before, after in zip(steps, steps[1:], strict=False):
        assert before["MetricIntervalUpperBound"] == after["MetricIntervalLowerBound"]
    assert "MetricIntervalUpperBound" not in steps[-1]
    assert [s["ScalingAdjustment"] for s in steps] == list(range(2, 11))


def test_scale_in_goes_back_to_the_minimum_when_nothing_waits(scaled: dict) -> None:
    alarm, policy = alarm_and_policy(scaled, "LessThanThreshold")
    assert alarm["Threshold"] == 1  # "fewer than one", i.e. none visible
    assert alarm["EvaluationPeriods"] == DEFAULTS["idle_minutes"]
    assert alarm["TreatMissingData"] == "notBreaching"  # no data is no proof of idleness
    (step,) = policy["StepAdjustments"]
    assert (policy["AdjustmentType"], step["ScalingAdjustment"]) == ("ExactCapacity", 1)
    assert step["MetricIntervalUpperBound"] == 0 and "MetricIntervalLowerBound" not in step


def test_busy_workers_may_protect_themselves_and_warm_up_matches_launch(scaled: dict) -> None:
    (group,) = of_type(scaled, "AWS::AutoScaling::AutoScalingGroup").values()
    assert group["Properties"]["DefaultInstanceWarmup"] == LAUNCH_TIME.to_seconds()
    fleet = read_fleet(scaled, "ten")
    assert fleet.protects_busy  # the role may call autoscaling:SetInstanceProtection
    assert (fleet.min_size, fleet.max_size, fleet.desired) == (1, 10, 1)
    assert fleet.visibility_timeout == 120


def _bare_group(max_capacity: int) -> tuple[autoscaling.AutoScalingGroup, sqs.Queue]:
    stack = cdk.Stack(cdk.App(), "Bare")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=1, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="p", subnet_type=ec2.SubnetType.PUBLIC)])
    group = autoscaling.AutoScalingGroup(
        stack, "Group", vpc=vpc, instance_type=ec2.InstanceType("t2.micro"),
        machine_image=ec2.MachineImage.latest_amazon_linux2023(), max_capacity=max_capacity)
    return group, sqs.Queue(stack, "Queue")


def test_refuses_a_group_that_cannot_scale_and_bad_props() -> None:
    group, queue = _bare_group(1)
    with pytest.raises(ValueError, match="MaxSize > MinSize"):
        BacklogScaling(group.node.scope, "Scaling", group=group, queue=queue)
    group, queue = _bare_group(3)
    with pytest.raises(ValueError, match="at least 1"):
        BacklogScaling(group.node.scope, "Scaling", group=group, queue=queue, jobs_per_worker=0)


# ---- the simulator's parts ------------------------------------------------------------------

def test_metric_math() -> None:
    assert evaluate("visible / inService", {"visible": 300.0, "inService": 3.0}) == 100
    assert evaluate("a + b * 2 - MAX(a, 1)", {"a": 4.0, "b": 3.0}) == 6
    assert evaluate("a / b", {"a": 1.0, "b": 0.0}) is None  # CloudWatch drops the point
    assert evaluate("a + b", {"a": 1.0, "b": None}) is None
    with pytest.raises(PolicyError, match="unknown id"):
        evaluate("a + c", {"a": 1.0})
    with pytest.raises(PolicyError):
        evaluate("FILL(a, 0)", {"a": 1.0})


@pytest.mark.parametrize(("difference", "below", "expected"), [
    (0, False, 2), (99.9, False, 2), (100, False, 3), (-1, True, 1), (0, True, 1)])
def test_step_bounds_follow_aws_rules(difference: float, below: bool, expected: int) -> None:
    policy = StepPolicy("p", "ExactCapacity", (Step(None, 0.0, 1), Step(0.0, 100.0, 2),
                                               Step(100.0, None, 3)), None, None, None)
    # Above the threshold a lower bound is inclusive; below it an upper bound is.
    assert pick_step(policy, difference, below).adjustment == expected


def world(**changes: Any) -> World:
    base = World(launch_seconds=0.0, wait_seconds=20, batch_seconds=1.0, flush_seconds=0.2,
                 sqs_call_seconds=0.0, credits=False)
    return dataclasses.replace(base, **changes)


def fleet(size: int = 1, **changes: Any) -> Fleet:
    base = Fleet(label="f", service="ec2", min_size=size, max_size=size, desired=size,
                 protects_busy=True, group_metrics=frozenset(), default_warmup=None,
                 default_cooldown=300.0, visibility_timeout=120.0)
    return dataclasses.replace(base, **changes)


def run(fleet_: Fleet, world_: World, jobs: list[Job], horizon: float = 3600.0) -> Any:
    return Simulation(fleet_, world_, jobs, surge=(0.0, 0.0), horizon=horizon).run()


def test_one_worker_runs_a_batch_one_job_after_another() -> None:
    outcome = run(fleet(), world(), [Job(0.0, "k", 1.0, 0.0) for _ in range(10)])
    # The worker sends a result once the next job has finished 0.2 s or more after it:
    # 1 s jobs go out in pairs.
    assert sorted(outcome.times) == pytest.approx([2, 2, 4, 4, 6, 6, 8, 8, 10, 10])
    assert outcome.drained_at == pytest.approx(10.0)
    assert outcome.instance_seconds == 3600 and outcome.busy_terminated == 0


def test_a_second_worker_gets_nothing_while_the_first_holds_the_batch() -> None:
    # The first receive takes all 10 (no job time measured yet): 10 s, not 5 s.
    outcome = run(fleet(2), world(), [Job(0.0, "k", 1.0, 0.0) for _ in range(10)])
    assert outcome.drained_at == pytest.approx(10.0)
    assert outcome.instance_seconds == 7200


def test_cpu_credits_run_out_and_the_rest_runs_at_the_baseline() -> None:
    # 0.45 vCPU-s of credit at a net 0.9 per second: 0.5 s at full speed, 0.5 s at 10 %.
    outcome = run(fleet(), world(credits=True, credit_cap=0.45), [Job(0.0, "k", 1.0, 0.0)])
    assert outcome.times == pytest.approx([0.5 + 0.5 / 0.1])


VISIBLE = Query("m", series="visible", metric_name="ApproximateNumberOfMessagesVisible")


def scale_out_fleet(service: str = "ec2", cooldown: float | None = None) -> Fleet:
    out = StepPolicy("out", "ChangeInCapacity", (Step(0.0, 400.0, 1), Step(400.0, None, 5)),
                     None, None, cooldown)
    alarm = Alarm("hi", (VISIBLE,), "GreaterThanOrEqualToThreshold", 100.0, 1, 1,
                  "notBreaching", ("out",))
    return fleet(1, service=service, max_size=10, alarms=(alarm,), steps={"out": out})


def test_backlog_is_seen_a_metric_delay_later_and_launched_at_the_next_reconcile() -> None:
    jobs = [Job(0.0, "k", 10.0, 0.0) for _ in range(1000)]
    outcome = run(scale_out_fleet(), world(metric_delay=60.0, launch_seconds=30.0), jobs, 200)
    # sample at 30 s, visible to the alarm at 90 s, evaluated at 91 s, launched at 100.5 s
    first = next(t for t, _, instances, _ in outcome.timeline if instances > 1)
    assert first == 110  # the first 10-second timeline point after 100.5 s
    assert max(d for *_, d in outcome.timeline) == 6  # +5 once; warm-up stops a second +5


def test_ecs_cooldown_counts_the_capacity_already_added() -> None:
    jobs = [Job(0.0, "k", 10.0, 0.0) for _ in range(5000)]
    outcome = run(scale_out_fleet("ecs", cooldown=300.0), world(), jobs, 450)
    desired = {t: d for t, *_, d in outcome.timeline}
    assert desired[100] == 6  # +5 at 91 s
    assert desired[380] == 6  # the same alarm every minute adds nothing within 300 s
    assert desired[400] == 10  # +5 again at 391 s, capped at the maximum


def scale_in_fleet(protects_busy: bool) -> Fleet:
    to_min = StepPolicy("in", "ExactCapacity", (Step(None, 0.0, 1),), None, None, None)
    alarm = Alarm("idle", (VISIBLE,), "LessThanThreshold", 1.0, 1, 1, "notBreaching", ("in",))
    return fleet(3, min_size=1, protects_busy=protects_busy, alarms=(alarm,),
                 steps={"in": to_min})


@pytest.mark.parametrize(("protects", "killed"), [(True, 0), (False, 2)])
def test_scale_in_ends_busy_workers_only_without_protection(protects: bool, killed: int) -> None:
    # The idle history before t = 0 puts the alarm in ALARM at 31 s: desired 3 -> 1 while all
    # three workers hold 10-second jobs (30 jobs, a batch of 10 each).
    jobs = [Job(0.0, "k", 10.0, 0.0) for _ in range(30)]
    outcome = run(scale_in_fleet(protects), world(), jobs, 1000)
    assert outcome.busy_terminated == killed
    assert len(outcome.times) == 30  # killed jobs come back after the visibility timeout
    # Killed at 40.5 s, each had sent 4 results (in pairs, at 20 and 40 s): 6 jobs come back.
    late = [t for t in outcome.times if t > 120]
    assert len(late) == 6 * killed


def test_target_tracking_sizes_the_group_in_proportion_after_three_minutes() -> None:
    queries = (dataclasses.replace(VISIBLE, id="visible", return_data=False),
               Query("inService", series="in_service", metric_name="GroupInServiceInstances",
                     return_data=False),
               Query("e", expression="visible / inService"))
    policy = TargetTracking("tt", queries, 100.0, False, 0.0)
    tracked = fleet(1, max_size=10, tracking=(policy,),
                    group_metrics=frozenset({"GroupInServiceInstances"}))
    jobs = [Job(0.0, "k", 100.0, 0.0) for _ in range(450)]
    outcome = run(tracked, world(), jobs, 300)
    desired = {t: d for t, *_, d in outcome.timeline}
    # samples at 30, 90, 150 s seen a minute later: the third at 211 s; ~450/100 -> 5
    assert desired[210] == 1 and desired[220] == math.ceil(440 / 100)


def test_reading_a_policy_on_a_metric_the_group_does_not_collect_fails(scaled: dict) -> None:
    template = {"Resources": dict(scaled["Resources"])}
    policies = of_type(scaled, "AWS::AutoScaling::ScalingPolicy")
    name, alarm = next((k, v) for k, v in of_type(scaled, "AWS::CloudWatch::Alarm").items()
                       if any({"Ref": p} in v["Properties"].get("AlarmActions", [])
                              for p in policies))
    props = dict(alarm["Properties"], MetricName="GroupDesiredCapacity",
                 Namespace="AWS/AutoScaling", Dimensions=[])
    template["Resources"][name] = {**alarm, "Properties": props}
    with pytest.raises(PolicyError, match="does not collect"):
        read_fleet(template, "x")


# ---- the benchmark runs ----------------------------------------------------------------------

@pytest.mark.slow
def test_quick_run_prints_every_table_and_writes_small_figures(tmp_path, capsys) -> None:
    from bench.scaling.__main__ import main

    assert main(["--quick", "--figures", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for title in ("burst of", "the first job into an idle stack", "Poisson 2 jobs/s",
                  "daily ramp", "jobs/s for", "### Targets", "### Warm pool size"):
        assert title in out
    assert "busy instances terminated by scale-in, all loads: 0 (target 0): met" in out
    assert "max_workers=1: 1..1 instance(s)" in out
    assert "an idle month costs 0.80 USD (0 running, 1 stopped in the pool)" in out
    figures = sorted(tmp_path.glob("scaling-*.png"))
    assert len(figures) == 5
    assert all(0 < f.stat().st_size < 200_000 for f in figures)
