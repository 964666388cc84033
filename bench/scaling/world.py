"""The simulated world (simpy): SQS queue, Auto Scaling group, CloudWatch, t2.micro workers.

    arrivals -> queue (visible) --receive (long poll, a batch)--> worker on an instance
       |          ^   sampled once a minute, seen by alarms `metric_delay` later
       |          |                  alarms -> scaling policies -> desired capacity
       |          +-- messages of a terminated busy worker come back after the visibility timeout
       +-- the client's capacity raise; a worker's after full batches (worker_src/capacity.py)
    desired capacity -> a stopped instance of the warm pool (warm start) or a new one (launch)

The policy (alarms, steps, target tracking, warm-up, cooldown, limits, protection) comes from a
template (bench.scaling.policy.Fleet); the world's figures come from World. AWS's own rules are
written out where they apply, with their source in docs/scaling.md.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

import simpy

from bench.scaling import credits
from bench.scaling.actions import AlarmActions
from bench.scaling.cloudwatch import CloudWatch
from bench.scaling.policy import Fleet
from worker_src.capacity import (
    FULL_BATCHES_IN_A_ROW,
    RAISE_INTERVAL_SECONDS,
    workers_for_backlog,
)

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
    warm_seconds: float = 40.0  # start of a stopped pool instance to the worker's first receive


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
    full_in_a_row: int = 0  # full receives in a row (the worker's capacity raise)
    last_raise: float = -1e9
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
    first_answer: float | None = None  # first job's answer, from the first arrival
    arrivals_seconds: float = 0.0  # from t = 0 to the last arrival
    arrivals_instance_seconds: float = 0.0  # instance-seconds billed within those
    pool_seconds: float = 0.0  # stopped pool instances' volume-seconds
    warm_starts: int = 0
    cold_launches: int = 0


class Simulation(AlarmActions):
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
        delay = world.metric_delay if fleet.metric_delay is None else fleet.metric_delay
        self.cloudwatch = CloudWatch(delay, {
            "visible": 0.0, "in_flight": 0.0, "oldest_age": 0.0, "delayed": 0.0,
            "in_service": float(fleet.desired), "desired": float(fleet.desired)},
            resolution=fleet.resolution)
        self.pool = fleet.warm_pool  # stopped, installed instances
        self.refilling = 0  # pool instances being launched and installed
        self.pool_seconds, self.pool_at = 0.0, 0.0
        self.warm_starts = self.cold_launches = 0
        self.first_answer: float | None = None
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
        every, phase = self.cloudwatch.resolution, self.cloudwatch.phase
        self.env.process(self._every(every, phase, self._sample))
        if self.fleet.scales:
            self.env.process(self._every(every, phase + 1, self._evaluate_alarms))
        self.env.process(self._every(self.world.reconcile_seconds, 0.5, self._reconcile))
        self.env.process(self._every(self.timeline_every, 0.0, self._record))
        self.env.process(self._drain_watch())
        self.env.run(until=self.horizon)
        self._pool_change(0)
        billed = sum(max(MINIMUM_BILLED, min(i.terminated or self.horizon, self.horizon)
                         - i.launched) for i in self.instances)
        # A pool instance runs while it installs, then is stopped.
        billed += self.world.launch_seconds * self.refills
        end = self.jobs[-1].arrival if self.jobs else 0.0
        during = sum(max(0.0, min(i.terminated or end, end) - i.launched)
                     for i in self.instances if i.launched < end)
        return Outcome(self.fleet.label, self.times, len(self.jobs), self.max_backlog,
                       self.drained_at, billed, self.busy_terminated, self.actions,
                       self.timeline, first_answer=self.first_answer,
                       arrivals_seconds=end, arrivals_instance_seconds=during,
                       pool_seconds=self.pool_seconds, warm_starts=self.warm_starts,
                       cold_launches=self.cold_launches)

    def _every(self, interval: float, phase: float, action):  # noqa: ANN001, ANN202
        yield self.env.timeout(phase)
        while True:
            action()
            yield self.env.timeout(interval)

    def _arrivals(self):  # noqa: ANN202
        sent = 0  # jobs of the run being sent (those arriving at one instant)
        for number, job in enumerate(self.jobs):
            if job.arrival > self.env.now:
                yield self.env.timeout(job.arrival - self.env.now)
            self._make_visible(job)
            sent += 1
            following = self.jobs[number + 1] if number + 1 < len(self.jobs) else None
            if following is None or following.arrival > job.arrival:
                # The client raises capacity right after it sent a run's jobs.
                self._raise(max(sent, len(self.visible)))
                sent = 0

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
        start = "ready"
        if not ready_now:
            start = "warm" if self.pool else "cold"
        if start == "warm":
            self._pool_change(-1)
            self.warm_starts += 1
            self._refill()
        elif start == "cold":
            self.cold_launches += 1
        # t2 standard instances get launch credits at each launch and start.
        balance = self.world.credit_cap if ready_now else self.world.launch_credits
        instance = Instance(len(self.instances), now, balance, now, initial=ready_now,
                            protected=self.fleet.launch_protected and not ready_now)
        self.instances.append(instance)
        instance.process = self.env.process(self._worker(instance, start))

    def _pool_change(self, delta: int) -> None:
        self.pool_seconds += self.pool * (self.env.now - self.pool_at)
        self.pool_at = self.env.now
        self.pool += delta

    refills = 0

    def _refill(self) -> None:
        """The group launches an instance into the pool: installed, then stopped."""
        if self.pool + self.refilling >= self.fleet.warm_pool:
            return
        self.refilling += 1
        self.refills += 1

        def installed():  # noqa: ANN202
            yield self.env.timeout(self.world.launch_seconds)
            self.refilling -= 1
            self._pool_change(+1)

        self.env.process(installed())

    def _raise(self, waiting: int) -> None:
        """worker_src.capacity.raise_capacity: never lower, never above the maximum."""
        if not self.fleet.raises_capacity:
            return
        wanted = min(self.fleet.max_size, workers_for_backlog(waiting, self.fleet.min_size))
        if wanted > self.desired:
            self.desired = wanted
            self.actions += 1
            self._reconcile()  # SetDesiredCapacity launches at once, not at the next check

    def _worker(self, instance: Instance, start: str):  # noqa: ANN202
        try:
            if start == "warm":
                yield self.env.timeout(self.world.warm_seconds)
            elif start == "cold":
                yield self.env.timeout(self.world.launch_seconds)
                credits.spend(self.world, instance, self.env.now, self.world.install_cpu_seconds)
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
            jobs = self._hand_out(instance, count)
            self._worker_signal(instance, len(jobs) >= count)
            return jobs
        event = self.env.event()
        instance.waiter = event
        self.waiters.append((event, instance, count))
        yield event | self.env.timeout(self.world.wait_seconds)
        if event.triggered:
            self._worker_signal(instance, len(event.value) >= count)
            return event.value
        instance.full_in_a_row = 0
        self.waiters.remove((event, instance, count))
        instance.waiter = None
        return []

    def _worker_signal(self, instance: Instance, full: bool) -> None:
        """worker_src.capacity.BacklogSignal: full batches in a row raise capacity."""
        instance.full_in_a_row = instance.full_in_a_row + 1 if full else 0
        if (instance.full_in_a_row >= FULL_BATCHES_IN_A_ROW
                and self.env.now - instance.last_raise >= RAISE_INTERVAL_SECONDS):
            instance.last_raise = self.env.now
            self._raise(len(self.visible))

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
            yield self.env.timeout(credits.cpu_time(self.world, instance, self.env.now, job.cpu))
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
        if self.first_answer is None and jobs:
            self.first_answer = self.env.now - self.jobs[0].arrival
        for job in jobs:
            self.times.append(self.env.now - job.arrival)
            instance.held.remove(job)
        self._check_drained()

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
                if self.pool + self.refilling < self.fleet.warm_pool:
                    self._pool_change(+1)  # reused on scale-in: stopped back into the pool

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
