"""The simulated world (simpy): SQS queue, Auto Scaling group, CloudWatch, t2.micro workers.

    arrivals -> queue (visible) --receive (long poll, a batch)--> worker on an instance
                  ^   sampled once a minute, seen by alarms `metric_delay` later
                  |                  alarms -> scaling policies -> desired capacity
                  +-- messages of a terminated busy worker come back after the visibility timeout

The policy (alarms, steps, target tracking, warm-up, cooldown, limits, protection) comes from a
template (bench.scaling.policy.Fleet); the world's figures come from World. AWS's own rules are
written out where they apply, with their source in docs/scaling.md.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field

import simpy

from bench.scaling.cloudwatch import MINUTE, SAMPLE_PHASE, CloudWatch, breach_test
from bench.scaling.policy import Alarm, Fleet, Step, StepPolicy, TargetTracking, pick_step

# AWS: the alarms target tracking creates for a 1-minute metric (3 of 3 above the target to scale
# out, 15 of 15 below 90 % of it to scale in) and the default cooldown of an ECS service.
TRACKING_OUT_POINTS = 3
TRACKING_IN_POINTS = 15
TRACKING_IN_FRACTION = 0.9
ECS_DEFAULT_COOLDOWN = 300.0
# EC2 bills Linux by the second with a one-minute minimum.
MINIMUM_BILLED = 60.0


@dataclass(frozen=True)
class World:
    """The figures of the world around the policy (bench.scaling.loads.measured_world)."""

    launch_seconds: float  # launch to the worker's first receive
    wait_seconds: float  # the worker's long poll
    batch_seconds: float  # work a worker takes per receive
    flush_seconds: float  # results wait at most this long for a shared send
    sqs_call_seconds: float = 0.015
    metric_delay: float = 60.0
    reconcile_seconds: float = 10.0  # how often the group compares desired and actual
    credits: bool = True  # model t2 CPU credits
    baseline: float = 0.10  # t2.micro: 10 % of a vCPU, i.e. 6 credits an hour
    credit_cap: float = 144 * 60.0  # vCPU-seconds (144 credits of one vCPU-minute)
    launch_credits: float = 30 * 60.0
    install_cpu_seconds: float = 60.0


@dataclass(frozen=True)
class Job:
    arrival: float
    kind: str
    cpu: float  # seconds of one vCPU at full speed
    io: float  # seconds waiting on S3 (no CPU)


@dataclass
class Instance:
    number: int
    launched: float
    credits: float
    credits_at: float
    initial: bool = False  # running before the simulation starts: warmed up, full credits
    terminated: float | None = None
    ready: bool = False
    protected: bool = False
    held: list[Job] = field(default_factory=list)
    average_job: float = 0.0
    waiter: simpy.Event | None = None
    process: simpy.Process | None = None

    @property
    def alive(self) -> bool:
        return self.terminated is None


@dataclass
class Outcome:
    label: str
    times: list[float]  # time in system of each finished job
    jobs: int
    max_backlog: int
    drained_at: float | None
    instance_seconds: float
    busy_terminated: int
    actions: int
    timeline: list[tuple[float, int, int, int]]  # (t, visible, instances, desired)


class Simulation:
    def __init__(self, fleet: Fleet, world: World, jobs: list[Job], *, surge: tuple[float, float],
                 horizon: float, seed: int = 1, timeline_every: float = 10.0) -> None:
        self.fleet, self.world, self.jobs = fleet, world, jobs
        self.env = simpy.Environment()
        self.rng = random.Random(seed)
        self.surge_start, self.surge_end = surge
        self.horizon = horizon
        self.visible: deque[Job] = deque()
        self.waiters: deque[tuple[simpy.Event, Instance, int]] = deque()
        self.lost_in_flight = 0  # messages of terminated workers, invisible until they return
        self.instances: list[Instance] = []
        self.desired = fleet.desired
        self.cloudwatch = CloudWatch(world.metric_delay, {
            "visible": 0.0, "in_flight": 0.0, "oldest_age": 0.0, "delayed": 0.0,
            "in_service": float(fleet.desired), "desired": float(fleet.desired)})
        self.policy_clock: dict[str, dict[str, float]] = {}
        self.times: list[float] = []
        self.max_backlog = 0
        self.drained_at: float | None = None
        self.busy_terminated = 0
        self.actions = 0
        self.timeline: list[tuple[float, int, int, int]] = []
        self.timeline_every = timeline_every

    # ---- running --------------------------------------------------------------------------

    def run(self) -> Outcome:
        for _ in range(self.fleet.desired):
            self._launch(ready_now=True)
        self.env.process(self._arrivals())
        self.env.process(self._every(MINUTE, SAMPLE_PHASE, self._sample))
        if self.fleet.scales:
            self.env.process(self._every(MINUTE, SAMPLE_PHASE + 1, self._evaluate_alarms))
        self.env.process(self._every(self.world.reconcile_seconds, 0.5, self._reconcile))
        self.env.process(self._every(self.timeline_every, 0.0, self._record))
        self.env.process(self._drain_watch())
        self.env.run(until=self.horizon)
        billed = sum(max(MINIMUM_BILLED, min(i.terminated or self.horizon, self.horizon)
                         - i.launched) for i in self.instances)
        return Outcome(self.fleet.label, self.times, len(self.jobs), self.max_backlog,
                       self.drained_at, billed, self.busy_terminated, self.actions,
                       self.timeline)

    def _every(self, interval: float, phase: float, action):  # noqa: ANN001, ANN202
        yield self.env.timeout(phase)
        while True:
            action()
            yield self.env.timeout(interval)

    def _arrivals(self):  # noqa: ANN202
        for job in self.jobs:
            if job.arrival > self.env.now:
                yield self.env.timeout(job.arrival - self.env.now)
            self._make_visible(job)

    def _drain_watch(self):  # noqa: ANN202
        yield self.env.timeout(self.surge_end)
        self._check_drained()

    # ---- the queue --------------------------------------------------------------------------

    def _make_visible(self, job: Job) -> None:
        self.visible.append(job)
        self.max_backlog = max(self.max_backlog, len(self.visible))
        while self.waiters and self.visible:
            event, instance, count = self.waiters.popleft()
            event.succeed(self._hand_out(instance, count))

    def _hand_out(self, instance: Instance, count: int) -> list[Job]:
        jobs = [self.visible.popleft() for _ in range(min(count, len(self.visible)))]
        instance.held = list(jobs)
        instance.protected = self.fleet.protects_busy  # the worker's set_busy(True)
        instance.waiter = None
        return jobs

    def _in_flight(self) -> int:
        return self.lost_in_flight + sum(len(i.held) for i in self.instances if i.alive)

    def _come_back(self, jobs: list[Job]):  # noqa: ANN202
        self.lost_in_flight += len(jobs)
        yield self.env.timeout(self.fleet.visibility_timeout)
        self.lost_in_flight -= len(jobs)
        for job in jobs:
            self._make_visible(job)

    def _check_drained(self) -> None:
        if (self.drained_at is None and self.env.now >= self.surge_end and not self.visible
                and self._in_flight() == 0):
            self.drained_at = self.env.now

    # ---- instances and the worker loop ------------------------------------------------------

    def _launch(self, ready_now: bool = False) -> None:
        now = self.env.now
        credits = self.world.credit_cap if ready_now else self.world.launch_credits
        instance = Instance(len(self.instances), now, credits, now, initial=ready_now)
        self.instances.append(instance)
        instance.process = self.env.process(self._worker(instance, ready_now))

    def _worker(self, instance: Instance, ready_now: bool):  # noqa: ANN202
        try:
            if not ready_now:
                yield self.env.timeout(self.world.launch_seconds)
                self._spend(instance, self.world.install_cpu_seconds)
            instance.ready = True
            while True:
                jobs = yield from self._receive(instance)
                if not jobs:
                    instance.protected = False  # the worker's set_busy(False)
                    continue
                yield from self._process_batch(instance, jobs)
        except simpy.Interrupt:
            return

    def _receive(self, instance: Instance):  # noqa: ANN202
        yield self.env.timeout(self.world.sqs_call_seconds)
        count = self._batch_size(instance)
        if self.visible:
            return self._hand_out(instance, count)
        event = self.env.event()
        instance.waiter = event
        self.waiters.append((event, instance, count))
        yield event | self.env.timeout(self.world.wait_seconds)
        if event.triggered:
            return event.value
        self.waiters.remove((event, instance, count))
        instance.waiter = None
        return []

    def _batch_size(self, instance: Instance) -> int:
        """The worker's rule (worker_src.worker.Worker.batch_size): about BATCH_SECONDS of work."""
        if instance.average_job * 10 <= self.world.batch_seconds:
            return 10
        return max(1, int(self.world.batch_seconds / instance.average_job))

    def _process_batch(self, instance: Instance, jobs: list[Job]):  # noqa: ANN202
        unflushed: list[Job] = []
        oldest: float | None = None
        for job in jobs:
            started = self.env.now
            yield self.env.timeout(self._cpu_time(instance, job.cpu))
            yield self.env.timeout(job.io)
            instance.average_job += 0.3 * (self.env.now - started - instance.average_job)
            unflushed.append(job)
            oldest = self.env.now if oldest is None else oldest
            if self.env.now - oldest >= self.world.flush_seconds:
                yield from self._flush(instance, unflushed)
                unflushed, oldest = [], None
        if unflushed:
            yield from self._flush(instance, unflushed)

    def _flush(self, instance: Instance, jobs: list[Job]):  # noqa: ANN202
        yield self.env.timeout(2 * self.world.sqs_call_seconds)  # send results, delete
        for job in jobs:
            self.times.append(self.env.now - job.arrival)
            instance.held.remove(job)
        self._check_drained()

    # ---- t2 CPU credits ------------------------------------------------------------------------

    def _accrue(self, instance: Instance) -> None:
        now = self.env.now
        if now > instance.credits_at:
            instance.credits = min(self.world.credit_cap, instance.credits
                                   + self.world.baseline * (now - instance.credits_at))
            instance.credits_at = now

    def _spend(self, instance: Instance, cpu: float) -> None:
        self._accrue(instance)
        instance.credits = max(0.0, instance.credits - cpu * (1 - self.world.baseline))

    def _cpu_time(self, instance: Instance, cpu: float) -> float:
        """Wall time of `cpu` seconds of full-speed work: at full speed while credits last
        (each second costs 1 - baseline of them net), then at the baseline share."""
        if not self.world.credits:
            return cpu
        self._accrue(instance)
        net = 1 - self.world.baseline
        full = min(cpu, instance.credits / net)
        instance.credits -= full * net
        wall = full + (cpu - full) / self.world.baseline
        instance.credits_at = self.env.now + wall
        return wall

    # ---- Auto Scaling ----------------------------------------------------------------------------

    def _reconcile(self) -> None:
        alive = [i for i in self.instances if i.alive]
        if len(alive) < self.desired:
            for _ in range(self.desired - len(alive)):
                self._launch()
        elif len(alive) > self.desired:
            candidates = [i for i in alive if not i.protected]
            self.rng.shuffle(candidates)
            for instance in candidates[:len(alive) - self.desired]:
                self._terminate(instance)

    def _terminate(self, instance: Instance) -> None:
        instance.terminated = self.env.now
        if instance.waiter is not None:
            self.waiters = deque(w for w in self.waiters if w[0] is not instance.waiter)
        if instance.held:
            self.busy_terminated += 1
            self.env.process(self._come_back(list(instance.held)))
            instance.held = []
        instance.process.interrupt()

    def _set_desired(self, value: float) -> None:
        value = int(min(self.fleet.max_size, max(self.fleet.min_size, value)))
        if value != self.desired:
            self.desired = value
            self.actions += 1

    # ---- CloudWatch ------------------------------------------------------------------------------

    def _sample(self) -> None:
        alive = sum(i.alive for i in self.instances)
        oldest = self.env.now - self.visible[0].arrival if self.visible else 0.0
        values = {"visible": len(self.visible), "in_flight": self._in_flight(),
                  "oldest_age": oldest, "delayed": 0.0, "in_service": alive,
                  "desired": self.desired}
        self.cloudwatch.record(self.env.now, values)

    def _record(self) -> None:
        alive = sum(i.alive for i in self.instances)
        self.timeline.append((self.env.now, len(self.visible), alive, self.desired))

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
