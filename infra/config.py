"""The stack's context options (cdk.json / `-c key=value`), parsed and checked before synthesis.

Pure functions: a bad option is a ConfigError with a one-line message that app.py prints.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker_src import contract

DEFAULT_STACK_NAME = contract.DEFAULT_STACK_NAME
# SSH from anything wider than this is refused: give your own address as a.b.c.d/32.
WIDEST_SSH_PREFIX = 16
MAX_WORKERS_LIMIT = 20

OPTIONS = (
    "stack_name",
    "ssh_cidr",
    "max_workers",
    "instance_type",
    "retention_days",
    "alarm_email",
    "visibility_timeout",
)


class ConfigError(ValueError):
    """A context option has a value the stack refuses."""


@dataclass(frozen=True)
class StackConfig:
    stack_name: str = DEFAULT_STACK_NAME
    ssh_cidr: str | None = None
    max_workers: int = 1
    instance_type: str = "t2.micro"
    retention_days: int = 7
    alarm_email: str | None = None
    visibility_timeout: int = 120

    @property
    def reply_queue_prefix(self) -> str:
        return contract.reply_queue_prefix(self.stack_name)

    @property
    def worker_group_name(self) -> str:
        return contract.worker_group_name(self.stack_name)


def parse_stack_name(value: str) -> str:
    # CloudFormation stack names allow [A-Za-z][A-Za-z0-9-]*; the name also prefixes the
    # reply queues ("<stack>-reply-<random>", SQS names <= 80 chars), hence the short limit.
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,47}", value):
        raise ConfigError(
            f"stack_name {value!r}: use 1-48 letters, digits and hyphens, starting with a letter"
        )
    return value


def parse_ssh_cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ConfigError(
            f"ssh_cidr {value!r} is not a valid network ({exc}); give your address as a.b.c.d/32"
        ) from None
    if network.prefixlen == 0:
        raise ConfigError(
            f"ssh_cidr {value!r} would open SSH to the whole internet; "
            "give your own address as a.b.c.d/32 (or use Session Manager, which needs no port)"
        )
    if network.version != 4:
        raise ConfigError(f"ssh_cidr {value!r}: the stack's VPC is IPv4 only; give a.b.c.d/32")
    if network.prefixlen < WIDEST_SSH_PREFIX:
        raise ConfigError(
            f"ssh_cidr {value!r} is wider than /{WIDEST_SSH_PREFIX}; "
            "give your own address as a.b.c.d/32"
        )
    return str(network)


def parse_int(name: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name} {value!r} is not a whole number") from None
    if not low <= number <= high:
        raise ConfigError(f"{name} {number} is out of range ({low}..{high})")
    return number


def parse_instance_type(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", value):
        raise ConfigError(f"instance_type {value!r} is not an EC2 instance type like t2.micro")
    return value


def parse_email(value: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise ConfigError(f"alarm_email {value!r} is not an e-mail address")
    return value


def config_from_context(context: Mapping[str, Any]) -> StackConfig:
    """Build the StackConfig from context values (strings from -c, or JSON values from cdk.json).

    Missing or empty values take the defaults.
    """
    values = {k: v for k, v in context.items() if k in OPTIONS and v not in (None, "")}
    defaults = StackConfig()
    return StackConfig(
        stack_name=parse_stack_name(str(values.get("stack_name", defaults.stack_name))),
        ssh_cidr=parse_ssh_cidr(str(values["ssh_cidr"])) if "ssh_cidr" in values else None,
        max_workers=parse_int(
            "max_workers", values.get("max_workers", defaults.max_workers), 1, MAX_WORKERS_LIMIT
        ),
        instance_type=parse_instance_type(
            str(values.get("instance_type", defaults.instance_type))
        ),
        retention_days=parse_int(
            "retention_days", values.get("retention_days", defaults.retention_days), 1, 3650
        ),
        alarm_email=parse_email(str(values["alarm_email"])) if "alarm_email" in values else None,
        # SQS allows 0..43200 s; 0 would hand a job to every worker at once.
        visibility_timeout=parse_int(
            "visibility_timeout",
            values.get("visibility_timeout", defaults.visibility_timeout),
            1,
            43200,
        ),
    )
