"""A synthesized CloudFormation template's scaling policy, read into plain data for the simulation.

Reads what decides how a fleet scales: the Auto Scaling group (EC2) or the ECS scalable target
(Application Auto Scaling), its alarms with their metrics or metric math, step and target-tracking
policies, warm-up and cooldown, and whether a busy worker may protect itself from scale-in. Every
number comes from the template; only AWS's own service behaviour lives in the simulator.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SQS = "AWS/SQS"
AUTOSCALING = "AWS/AutoScaling"
# The series the simulated world publishes: (namespace, metric name) -> key in World samples.
SERIES = {
    (SQS, "ApproximateNumberOfMessagesVisible"): "visible",
    (SQS, "ApproximateNumberOfMessagesNotVisible"): "in_flight",
    (SQS, "ApproximateAgeOfOldestMessage"): "oldest_age",
    (SQS, "ApproximateNumberOfMessagesDelayed"): "delayed",
    (AUTOSCALING, "GroupInServiceInstances"): "in_service",
    (AUTOSCALING, "GroupDesiredCapacity"): "desired",
    (AUTOSCALING, "GroupTotalInstances"): "in_service",
}
# Group metrics exist only when the group collects them (MetricsCollection).
GROUP_SERIES = {name for (namespace, name) in SERIES if namespace == AUTOSCALING}


class PolicyError(ValueError):
    """The template holds something the simulation cannot model faithfully."""


@dataclass(frozen=True)
class Query:
    """One entry of an alarm's or a policy's metric list: a metric, or an expression over ids."""

    id: str
    series: str | None = None  # a key of SERIES' values, for a metric
    metric_name: str | None = None
    stat: str = "Maximum"
    period: int = 60
    expression: str | None = None
    return_data: bool = True


@dataclass(frozen=True)
class Alarm:
    name: str
    queries: tuple[Query, ...]
    comparison: str
    threshold: float
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing: str
    actions: tuple[str, ...]  # logical ids of the scaling policies it invokes


@dataclass(frozen=True)
class Step:
    lower: float | None  # bounds relative to the alarm threshold; None = unbounded
    upper: float | None
    adjustment: float


@dataclass(frozen=True)
class StepPolicy:
    name: str
    adjustment_type: str  # ChangeInCapacity | ExactCapacity | PercentChangeInCapacity
    steps: tuple[Step, ...]
    min_magnitude: int | None
    warmup: float | None  # EC2 Auto Scaling: EstimatedInstanceWarmup (s)
    cooldown: float | None  # Application Auto Scaling: Cooldown (s)


@dataclass(frozen=True)
class TargetTracking:
    name: str
    queries: tuple[Query, ...]
    target: float
    disable_scale_in: bool
    warmup: float | None


@dataclass(frozen=True)
class Fleet:
    """Everything the simulation takes from one template."""

    label: str
    service: str  # "ec2" (Auto Scaling group) or "ecs" (Application Auto Scaling)
    min_size: int
    max_size: int
    desired: int
    protects_busy: bool  # the workers may call SetInstanceProtection on their group
    group_metrics: frozenset[str]
    default_warmup: float | None  # the group's DefaultInstanceWarmup
    default_cooldown: float  # the group's Cooldown (AWS default 300 s)
    visibility_timeout: float
    alarms: tuple[Alarm, ...] = ()
    steps: Mapping[str, StepPolicy] = field(default_factory=dict)
    tracking: tuple[TargetTracking, ...] = ()
    warm_pool: int = 0  # stopped, installed instances the group keeps (its WarmPool's MinSize)
    # The client and the workers may raise the desired capacity (worker_src/capacity.py): the
    # workers' role may call autoscaling:SetDesiredCapacity.
    raises_capacity: bool = False
    metric_delay: float | None = None  # None: the world's (SQS's 1-minute metrics)
    # NewInstancesProtectedFromScaleIn: launched protected, lifted at the first idle receive.
    launch_protected: bool = False

    @property
    def resolution(self) -> float:
        """CloudWatch's sampling for this fleet: a minute (SQS's own metrics), or a shorter
        period that one of its alarms or policies uses (a high-resolution metric)."""
        queries = [q for a in self.alarms for q in a.queries]
        queries += [q for t in self.tracking for q in t.queries]
        return float(min([60, *(q.period for q in queries)]))

    @property
    def scales(self) -> bool:
        return bool(self.alarms or self.tracking) and self.max_size > self.min_size


# ---- metric math ------------------------------------------------------------------------------

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Div: operator.truediv}
_FUNCTIONS = {"MAX": max, "MIN": min}


def evaluate(expression: str, values: Mapping[str, float | None]) -> float | None:
    """A CloudWatch metric-math expression of + - * /, numbers, MIN/MAX and ids; None if any
    input is missing or a division by zero leaves no datapoint (as CloudWatch drops it)."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise PolicyError(f"metric math {expression!r} is not simple arithmetic") from None

    def walk(node: ast.AST) -> float | None:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in values:
                raise PolicyError(f"metric math {expression!r} uses unknown id {node.id!r}")
            return values[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = walk(node.operand)
            return None if inner is None else -inner
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = walk(node.left), walk(node.right)
            if left is None or right is None:
                return None
            if isinstance(node.op, ast.Div) and right == 0:
                return None
            return _OPERATORS[type(node.op)](left, right)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id.upper() in _FUNCTIONS and node.args):
            args = [walk(a) for a in node.args]
            return None if any(a is None for a in args) else _FUNCTIONS[node.func.id.upper()](args)
        raise PolicyError(f"metric math {expression!r}: the simulation models only + - * /, "
                          f"MIN and MAX")

    return walk(tree)


# ---- reading a template -----------------------------------------------------------------------

def _refs(node: Any) -> set[str]:
    """Logical ids a fragment points at with Ref or Fn::GetAtt."""
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("Ref"), str):
            found.add(node["Ref"])
        if isinstance(node.get("Fn::GetAtt"), list):
            found.add(node["Fn::GetAtt"][0])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= _refs(item)
    return found


class _Reader:
    def __init__(self, template: Mapping[str, Any]) -> None:
        self.resources: dict[str, Any] = dict(template.get("Resources", {}))

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v.get("Properties", {}) for k, v in self.resources.items()
                if v["Type"] == cfn_type}

    def one(self, cfn_type: str) -> tuple[str, dict[str, Any]]:
        found = self.of_type(cfn_type)
        if len(found) != 1:
            raise PolicyError(f"expected one {cfn_type}, found {sorted(found)}")
        return next(iter(found.items()))

    def request_queue(self) -> tuple[str, dict[str, Any]]:
        """The job queue: the one queue with a redrive policy (its dead-letter queue has none)."""
        queues = {k: v for k, v in self.of_type("AWS::SQS::Queue").items() if "RedrivePolicy" in v}
        if len(queues) != 1:
            raise PolicyError(f"expected one queue with a dead-letter queue: {sorted(queues)}")
        return next(iter(queues.items()))

    def query(self, qid: str, metric: Mapping[str, Any], stat: str, period: Any,
              owners: Mapping[str, str], return_data: bool = True) -> Query:
        key = (metric.get("Namespace"), metric.get("MetricName"))
        if key not in SERIES:
            raise PolicyError(f"the simulation does not model the metric {key[0]}/{key[1]}")
        for dimension in metric.get("Dimensions", []):
            target = _refs(dimension.get("Value"))
            expected = owners.get(dimension["Name"])
            if expected is None or target != {expected}:
                raise PolicyError(f"metric {key[1]} has dimension {dimension['Name']}="
                                  f"{dimension.get('Value')!r}, not this stack's {expected}")
        return Query(qid, series=SERIES[key], metric_name=key[1], stat=stat,
                     period=int(period or 60), return_data=return_data)

    def queries(self, props: Mapping[str, Any], owners: Mapping[str, str]) -> tuple[Query, ...]:
        """An alarm's or a target-tracking policy's metric: one metric, or metric math."""
        if "Metrics" in props:
            found = []
            for entry in props["Metrics"]:
                return_data = entry.get("ReturnData", True)
                if "Expression" in entry:
                    found.append(Query(entry["Id"], expression=entry["Expression"],
                                       period=int(entry.get("Period", 60)),
                                       return_data=return_data))
                else:
                    stat = entry["MetricStat"]
                    found.append(self.query(entry["Id"], stat["Metric"], stat["Stat"],
                                            stat.get("Period", 60), owners, return_data))
            if sum(q.return_data for q in found) != 1:
                raise PolicyError("metric math must return exactly one series")
            return tuple(found)
        return (self.query("m", props, props.get("Statistic", "Average"),
                           props.get("Period", 60), owners),)

    def step_policy(self, name: str, config: Mapping[str, Any], warmup: Any) -> StepPolicy:
        steps = tuple(Step(_number(s.get("MetricIntervalLowerBound")),
                           _number(s.get("MetricIntervalUpperBound")),
                           float(s["ScalingAdjustment"])) for s in config["StepAdjustments"])
        return StepPolicy(name=name, adjustment_type=config.get("AdjustmentType",
                                                                "ChangeInCapacity"),
                          steps=steps, min_magnitude=_int(config.get("MinAdjustmentMagnitude")),
                          warmup=_number(warmup), cooldown=_number(config.get("Cooldown")))

    def alarms(self, policies: set[str], owners: Mapping[str, str]) -> tuple[Alarm, ...]:
        found = []
        for name, props in self.of_type("AWS::CloudWatch::Alarm").items():
            actions = sorted(_refs(props.get("AlarmActions", [])) & policies)
            if not actions:
                continue  # an alarm for people (the dead-letter alarm), not for scaling
            periods = int(props.get("EvaluationPeriods", 1))
            found.append(Alarm(
                name=name, queries=self.queries(props, owners),
                comparison=props["ComparisonOperator"], threshold=float(props["Threshold"]),
                evaluation_periods=periods,
                datapoints_to_alarm=int(props.get("DatapointsToAlarm", periods)),
                treat_missing=props.get("TreatMissingData", "missing"),
                actions=tuple(actions)))
        return tuple(sorted(found, key=lambda a: a.name))

    def grants(self, action: str) -> bool:
        """Whether any IAM statement of the template allows `action`."""
        documents = [p.get("PolicyDocument") for r in self.of_type("AWS::IAM::Role").values()
                     for p in r.get("Policies", [])]
        documents += [p.get("PolicyDocument") for p in self.of_type("AWS::IAM::Policy").values()]
        for document in documents:
            for statement in (document or {}).get("Statement", []):
                actions = statement.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                if statement.get("Effect") == "Allow" and action in actions:
                    return True
        return False


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def read_fleet(template: Mapping[str, Any], label: str) -> Fleet:
    """The scaling policy of the template's one Auto Scaling group or one ECS scalable target."""
    reader = _Reader(template)
    queue_id, queue = reader.request_queue()
    visibility = float(queue.get("VisibilityTimeout", 30))
    if reader.of_type("AWS::AutoScaling::AutoScalingGroup"):
        return _read_ec2(reader, label, queue_id, visibility)
    if reader.of_type("AWS::ApplicationAutoScaling::ScalableTarget"):
        return _read_ecs(reader, label, queue_id, visibility)
    raise PolicyError("the template has neither an Auto Scaling group nor a scalable target")


def _read_ec2(reader: _Reader, label: str, queue_id: str, visibility: float) -> Fleet:
    group_id, group = reader.one("AWS::AutoScaling::AutoScalingGroup")
    owners = {"QueueName": queue_id, "AutoScalingGroupName": group_id}
    collected = frozenset(name for entry in group.get("MetricsCollection", [])
                          for name in entry.get("Metrics", GROUP_SERIES))
    steps: dict[str, StepPolicy] = {}
    tracking = []
    for name, props in reader.of_type("AWS::AutoScaling::ScalingPolicy").items():
        if _refs(props.get("AutoScalingGroupName")) != {group_id}:
            raise PolicyError(f"scaling policy {name} is not on the group {group_id}")
        kind = props.get("PolicyType", "SimpleScaling")
        if kind == "StepScaling":
            steps[name] = reader.step_policy(name, props, props.get("EstimatedInstanceWarmup"))
        elif kind == "TargetTrackingScaling":
            config = props["TargetTrackingConfiguration"]
            if "CustomizedMetricSpecification" not in config:
                raise PolicyError(f"{name}: only customized metrics are modelled")
            tracking.append(TargetTracking(
                name=name, queries=reader.queries(config["CustomizedMetricSpecification"],
                                                  owners),
                target=float(config["TargetValue"]),
                disable_scale_in=bool(config.get("DisableScaleIn", False)),
                warmup=_number(props.get("EstimatedInstanceWarmup"))))
        else:
            raise PolicyError(f"{name}: {kind} policies are not modelled")
    fleet = Fleet(
        label=label, service="ec2", min_size=int(group["MinSize"]),
        max_size=int(group["MaxSize"]),
        desired=int(group.get("DesiredCapacity", group["MinSize"])),
        protects_busy=reader.grants("autoscaling:SetInstanceProtection"),
        group_metrics=collected, default_warmup=_number(group.get("DefaultInstanceWarmup")),
        default_cooldown=float(group.get("Cooldown", 300)), visibility_timeout=visibility,
        alarms=reader.alarms(set(steps), owners), steps=steps, tracking=tuple(tracking),
        warm_pool=sum(int(p.get("MinSize", 0))
                      for p in reader.of_type("AWS::AutoScaling::WarmPool").values()),
        raises_capacity=reader.grants("autoscaling:SetDesiredCapacity"),
        launch_protected=bool(group.get("NewInstancesProtectedFromScaleIn", False)))
    _check_group_metrics(fleet)
    return fleet


def _read_ecs(reader: _Reader, label: str, queue_id: str, visibility: float) -> Fleet:
    target_id, target = reader.one("AWS::ApplicationAutoScaling::ScalableTarget")
    owners = {"QueueName": queue_id}
    steps = {}
    for name, props in reader.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").items():
        if _refs(props.get("ScalingTargetId")) != {target_id}:
            raise PolicyError(f"scaling policy {name} is not on the target {target_id}")
        if props["PolicyType"] == "StepScaling":
            steps[name] = reader.step_policy(name, props["StepScalingPolicyConfiguration"], None)
    services = reader.of_type("AWS::ECS::Service")
    desired = max((int(s.get("DesiredCount", 1)) for s in services.values()), default=1)
    return Fleet(
        label=label, service="ecs", min_size=int(target["MinCapacity"]),
        max_size=int(target["MaxCapacity"]), desired=max(desired, int(target["MinCapacity"])),
        protects_busy=reader.grants("ecs:UpdateTaskProtection"), group_metrics=frozenset(),
        default_warmup=None, default_cooldown=0.0, visibility_timeout=visibility,
        alarms=reader.alarms(set(steps), owners), steps=steps)


def _check_group_metrics(fleet: Fleet) -> None:
    """A policy on a group metric the group does not collect would never see data."""
    queries = [q for a in fleet.alarms for q in a.queries]
    queries += [q for t in fleet.tracking for q in t.queries]
    missing = {q.metric_name for q in queries
               if q.metric_name in GROUP_SERIES and q.metric_name not in fleet.group_metrics}
    if missing:
        raise PolicyError(f"the policy uses {sorted(missing)} but the group does not collect "
                          f"them (MetricsCollection)")


def fixed_pool(fleet: Fleet, size: int, label: str) -> Fleet:
    """The same world with `size` workers and no scaling at all."""
    return Fleet(label=label, service=fleet.service, min_size=size, max_size=size, desired=size,
                 protects_busy=fleet.protects_busy, group_metrics=fleet.group_metrics,
                 default_warmup=fleet.default_warmup, default_cooldown=fleet.default_cooldown,
                 visibility_timeout=fleet.visibility_timeout)


def pick_step(policy: StepPolicy, difference: float, below: bool) -> Step | None:
    """The step whose interval holds the breach (AWS: above the threshold the lower bound is
    inclusive, below it the upper bound is)."""
    for step in policy.steps:
        low = -math.inf if step.lower is None else step.lower
        high = math.inf if step.upper is None else step.upper
        if (low < difference <= high) if below else (low <= difference < high):
            return step
    return None
