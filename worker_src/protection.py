"""Scale-in protection while busy, so the Auto Scaling group never ends a worker mid-job."""

from __future__ import annotations

import logging
import urllib.request
from typing import Any

log = logging.getLogger("worker")

IMDS = "http://169.254.169.254/latest"


class ScaleInProtection:
    """Protects this instance from scale-in while it holds jobs; lifts it when idle.

    Calls Auto Scaling only when the state changes, and on the first call whatever it asks: a
    scaling group launches its instances protected (so a scale-in that an alarm still decides
    from minutes-old idle data cannot end an instance on its way to a backlog), and the
    worker's first empty receive lifts that. With no group (tests) it does nothing.
    """

    def __init__(self, autoscaling: Any, group: str | None, instance_id: str | None) -> None:
        self.autoscaling = autoscaling
        self.group = group
        self.instance_id = instance_id
        self.protected: bool | None = None  # unknown until the first call

    def set_busy(self, busy: bool) -> None:
        if not (self.group and self.instance_id) or busy == self.protected:
            return
        try:
            self.autoscaling.set_instance_protection(
                InstanceIds=[self.instance_id], AutoScalingGroupName=self.group,
                ProtectedFromScaleIn=busy)
            self.protected = busy
        except Exception as exc:  # protection is a courtesy; the job still runs
            log.warning("could not %s scale-in protection: %s", "set" if busy else "lift", exc)


def instance_id_from_metadata(timeout: float = 2.0) -> str | None:
    """This EC2 instance's id through IMDSv2, or None when not on EC2."""
    try:
        token_request = urllib.request.Request(
            f"{IMDS}/api/token", method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"})
        with urllib.request.urlopen(token_request, timeout=timeout) as response:
            token = response.read().decode()
        id_request = urllib.request.Request(f"{IMDS}/meta-data/instance-id",
                                            headers={"X-aws-ec2-metadata-token": token})
        with urllib.request.urlopen(id_request, timeout=timeout) as response:
            return response.read().decode()
    except OSError:
        return None
