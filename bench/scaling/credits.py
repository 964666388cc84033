"""t2 CPU credits in the simulated world: full speed while credits last, then the baseline."""

from __future__ import annotations

from typing import Any


def accrue(world: Any, instance: Any, now: float) -> None:
    """Credits earned at the baseline rate since the instance's last account, up to the cap."""
    if now > instance.credits_at:
        instance.credits = min(world.credit_cap,
                               instance.credits + world.baseline * (now - instance.credits_at))
        instance.credits_at = now


def spend(world: Any, instance: Any, now: float, cpu: float) -> None:
    """Take `cpu` seconds of full-speed work from the instance's credits (install, boot)."""
    accrue(world, instance, now)
    instance.credits = max(0.0, instance.credits - cpu * (1 - world.baseline))


def cpu_time(world: Any, instance: Any, now: float, cpu: float) -> float:
    """Wall time of `cpu` seconds of full-speed work: at full speed while credits last
    (each second costs 1 - baseline of them net), then at the baseline share."""
    if not world.credits:
        return cpu
    accrue(world, instance, now)
    net = 1 - world.baseline
    full = min(cpu, instance.credits / net)
    instance.credits -= full * net
    wall = full + (cpu - full) / world.baseline
    instance.credits_at = now + wall
    return wall
