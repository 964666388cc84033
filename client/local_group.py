"""The local stack's stand-in for EC2 Auto Scaling: one worker process per instance of the group.

moto keeps the group (its desired capacity, its instances, their scale-in protection) but its
instances never boot. GroupFollower makes them real enough: an instance that appears gets a
worker process after `start_delay` seconds (the stand-in for a warm start from the pool),
bound to it by WQW_INSTANCE_ID so that the worker's own scale-in protection lands on it; an
instance that disappears (scale-in) has its worker stopped with SIGTERM, which finishes the job
in hand. moto runs no alarms, so the follower also stands in for the idle alarm: once no job
has waited for `idle_seconds`, it sets the group back to its MinSize, and moto removes only
unprotected instances, as Auto Scaling does.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from worker_src.capacity import waiting_jobs

# How often the follower looks at the group and the queue.
POLL_SECONDS = 0.5


@dataclass
class Sample:
    """One look at the group: when, its desired capacity, and worker processes running."""

    at: float
    desired: int
    running: int


@dataclass
class _Instance:
    start_at: float
    process: subprocess.Popen | None = None
    exits: list[int] = field(default_factory=list)


class GroupFollower:
    """Runs `start_worker(instance_id)` for each InService instance of `group` (see above)."""

    def __init__(self, autoscaling: Any, sqs: Any, group: str, queue_url: str,
                 start_worker: Callable[[str], subprocess.Popen], *,
                 start_delay: float, idle_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.autoscaling = autoscaling
        self.sqs = sqs
        self.group = group
        self.queue_url = queue_url
        self.start_worker = start_worker
        self.start_delay = start_delay
        self.idle_seconds = idle_seconds
        self.clock = clock
        self.samples: list[Sample] = []
        self.started = 0  # worker processes started, in all
        self._instances: dict[str, _Instance] = {}
        self._leaving: list[subprocess.Popen] = []
        self._idle_since: float | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.step()  # the group's first instances get their workers' timers at once
        self._thread = threading.Thread(target=self._run, name="group-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(POLL_SECONDS):
            try:
                self.step()
            except Exception as exc:  # the emulator is stopping, or a transient error
                if not self._stopping.is_set():
                    print(f"local stack: group follower: {exc}")

    def step(self) -> None:
        """One look: start, restart and stop workers; the idle alarm's stand-in."""
        (group,) = self.autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=[self.group])["AutoScalingGroups"]
        alive = {i["InstanceId"] for i in group["Instances"]
                 if i["LifecycleState"] in ("InService", "Pending")}
        now = self.clock()
        with self._lock:
            for instance_id in alive - set(self._instances):
                self._instances[instance_id] = _Instance(start_at=now + self.start_delay)
            for instance_id in set(self._instances) - alive:
                gone = self._instances.pop(instance_id)
                if gone.process is not None:
                    gone.process.terminate()  # SIGTERM: finishes the job in hand
                    self._leaving.append(gone.process)
            for instance_id, instance in self._instances.items():
                if instance.process is not None and instance.process.poll() is not None:
                    # systemd's Restart=always on an instance
                    instance.exits.append(instance.process.returncode)
                    instance.process = None
                    instance.start_at = now
                if instance.process is None and now >= instance.start_at:
                    instance.process = self.start_worker(instance_id)
                    self.started += 1
            self._leaving = [p for p in self._leaving if p.poll() is None]
            running = sum(i.process is not None for i in self._instances.values())
            self.samples.append(Sample(now, group["DesiredCapacity"], running))
        self._idle_alarm(group, now)

    def _idle_alarm(self, group: dict[str, Any], now: float) -> None:
        if waiting_jobs(self.sqs, self.queue_url) > 0:
            self._idle_since = None
            return
        if self._idle_since is None:
            self._idle_since = now
        # Applied again while idle, as Auto Scaling repeats an alarm's action each period:
        # a worker that was busy (protected) at the last try is removed once it is idle.
        if (now - self._idle_since >= self.idle_seconds
                and len(group["Instances"]) > group["MinSize"]):
            self.autoscaling.set_desired_capacity(
                AutoScalingGroupName=self.group, DesiredCapacity=group["MinSize"])

    def running(self) -> int:
        with self._lock:
            return sum(i.process is not None and i.process.poll() is None
                       for i in self._instances.values())

    def processes(self) -> list[subprocess.Popen]:
        with self._lock:
            return self._processes()

    def _processes(self) -> list[subprocess.Popen]:
        return [i.process for i in self._instances.values() if i.process is not None]

    def stop(self) -> list[subprocess.Popen]:
        """Stop following; the worker processes (running and leaving) for the caller to end."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            processes = [*self._processes(), *self._leaving]
            self._instances.clear()
            self._leaving = []
        return processes
