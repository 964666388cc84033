"""What Auto Scaling does when an alarm fires: step and target-tracking policies on the simulated
group (EC2 Auto Scaling, or Application Auto Scaling for an ECS service). AWS's own rules are
written out where they apply, with their source in docs/scaling.md.
"""

from __future__ import annotations

import math
from typing import Any

from bench.scaling.cloudwatch import breach_test
from bench.scaling.policy import Alarm, Step, StepPolicy, TargetTracking, pick_step

# AWS: the alarms target tracking creates for a 1-minute metric (3 of 3 above the target to scale
# out, 15 of 15 below 90 % of it to scale in) and the default cooldown of an ECS service.
TRACKING_OUT_POINTS = 3
TRACKING_IN_POINTS = 15
TRACKING_IN_FRACTION = 0.9
ECS_DEFAULT_COOLDOWN = 300.0


class AlarmActions:
    """The policies' half of bench.scaling.world.Simulation (it provides env, fleet, instances,
    desired, cloudwatch, policy_clock and _set_desired)."""

    env: Any
    fleet: Any
    instances: list[Any]
    desired: int
    cloudwatch: Any
    policy_clock: dict[str, dict[str, float]]

    def _set_desired(self, value: float) -> None:
        raise NotImplementedError

    def _evaluate_alarms(self) -> None:
        for alarm in self.fleet.alarms:
            value = self.cloudwatch.fires(self.env.now, alarm.name, alarm.queries,
                                          breach_test(alarm), alarm.evaluation_periods,
                                          alarm.datapoints_to_alarm, alarm.treat_missing)
            if value is not None:
                for action in alarm.actions:
                    self._step(self.fleet.steps[action], alarm, value)
        for policy in self.fleet.tracking:
            self._track(policy)


    # ---- scaling policies ------------------------------------------------------------------------

    def _step(self, policy: StepPolicy, alarm: Alarm, value: float) -> None:
        below = alarm.comparison.startswith("Less")
        step = pick_step(policy, value - alarm.threshold, below)
        if step is None:
            return
        now = self.env.now
        clock = self.policy_clock.setdefault(policy.name, {"out": -1e9, "in": -1e9, "base": 0})
        if policy.adjustment_type == "ExactCapacity":
            self._set_desired(step.adjustment)
            return
        if self.fleet.service == "ecs":
            cooldown = ECS_DEFAULT_COOLDOWN if policy.cooldown is None else policy.cooldown
            if step.adjustment < 0:
                if now - clock["in"] < cooldown:
                    return
                clock["in"] = now
                self._set_desired(self.desired + self._adjustment(policy, step, self.desired))
                return
            if now - clock["out"] >= cooldown:
                clock["out"], clock["base"] = now, self.desired
            base = clock["base"]
        else:
            if step.adjustment < 0:
                self._set_desired(self.desired + self._adjustment(policy, step, self.desired))
                return
            warmup = _first(policy.warmup, self.fleet.default_warmup, self.fleet.default_cooldown)
            # Instances still warming up are not part of the current capacity, but the capacity
            # they add counts: a repeated alarm adds only what its step asks beyond them.
            base = sum(1 for i in self.instances
                       if i.alive and (i.initial or now - i.launched >= warmup))
        self._set_desired(max(self.desired, base + self._adjustment(policy, step, base)))

    @staticmethod
    def _adjustment(policy: StepPolicy, step: Step, capacity: int) -> int:
        if policy.adjustment_type == "ChangeInCapacity":
            return int(step.adjustment)
        change = capacity * step.adjustment / 100  # PercentChangeInCapacity
        change = math.copysign(max(1, math.floor(abs(change))), change) if change else 0
        if policy.min_magnitude and abs(change) < policy.min_magnitude:
            change = math.copysign(policy.min_magnitude, change)
        return int(change)

    def _track(self, policy: TargetTracking) -> None:
        """Target tracking with the alarms AWS creates for it; capacity in proportion."""
        target = policy.target
        alive = sum(i.alive for i in self.instances)
        high = self.cloudwatch.fires(self.env.now, policy.name + ":high", policy.queries,
                                     lambda v: v > target, TRACKING_OUT_POINTS,
                                     TRACKING_OUT_POINTS, "missing")
        if high is not None:
            self._set_desired(max(self.desired, math.ceil(alive * high / target)))
        if policy.disable_scale_in:
            return
        low = self.cloudwatch.fires(self.env.now, policy.name + ":low", policy.queries,
                                    lambda v: v < TRACKING_IN_FRACTION * target,
                                    TRACKING_IN_POINTS, TRACKING_IN_POINTS, "missing")
        if low is not None:
            self._set_desired(min(self.desired, math.ceil(alive * low / target)))


def _first(*values: float | None) -> float:
    return next(v for v in values if v is not None)
