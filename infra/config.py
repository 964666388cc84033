"""The stack's context options (cdk.json / `-c key=value`): declared once, parsed and checked.

Each option is one field of StackConfig: its name, type and default are the field's, its
check and its documentation are in the field's metadata (`option(...)`). The README's option
table and docs/deploy.md show `options_table()`; tests/test_stack_options.py checks they agree.
Pure functions: a bad option is a ConfigError with a one-line message that app.py prints.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from worker_src import contract

# SSH from anything wider than this is refused: give your own address as a.b.c.d/32.
WIDEST_SSH_PREFIX = 16
MAX_WORKERS_LIMIT = 20


class ConfigError(ValueError):
    """A context option has a value the stack refuses."""


def option(default: Any, parse: Callable[[str], Any], doc: str) -> Any:
    """A StackConfig field: `parse` turns the context's text into the value (or raises
    ConfigError); `doc` is the option's one-paragraph documentation."""
    return field(default=default, metadata={"parse": parse, "doc": doc})


def parse_stack_name(value: str) -> str:
    """1-48 letters, digits and hyphens, starting with a letter"""
    # CloudFormation stack names allow [A-Za-z][A-Za-z0-9-]*; the name also prefixes the
    # reply queues ("<stack>_reply_<random>", SQS names <= 80 chars), hence the short limit.
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,47}", value):
        raise ConfigError(
            f"stack_name {value!r}: use 1-48 letters, digits and hyphens, starting with a letter"
        )
    return value


def parse_ssh_cidr(value: str) -> str:
    """an IPv4 network from /16 to /32"""
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


def whole_number(name: str, low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        return parse_int(name, value, low, high)

    parse.__doc__ = f"{low}..{high}"
    return parse


def parse_instance_type(value: str) -> str:
    """an EC2 instance type"""
    if not re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", value):
        raise ConfigError(f"instance_type {value!r} is not an EC2 instance type like t2.micro")
    return value


def parse_email(value: str) -> str:
    """an e-mail address"""
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise ConfigError(f"alarm_email {value!r} is not an e-mail address")
    return value


@dataclass(frozen=True)
class StackConfig:
    """Every context option of the stack, with its default, check and documentation."""

    stack_name: str = option(
        contract.DEFAULT_STACK_NAME, parse_stack_name,
        "CloudFormation stack name; also names the queues' prefix and the worker group.")
    ssh_cidr: str | None = option(
        None, parse_ssh_cidr,
        "Your address (a.b.c.d/32) to allow SSH from; only then is a key pair created. "
        "Without it the workers take no inbound traffic (use Session Manager).")
    min_workers: int = option(
        1, whole_number("min_workers", 0, MAX_WORKERS_LIMIT),
        "Workers kept running while no job waits. 0: none (an idle stack pays only the warm "
        "pool's stopped volumes; the first job waits for a warm start, docs/scaling.md).")
    max_workers: int = option(
        1, whole_number("max_workers", 1, MAX_WORKERS_LIMIT),
        "Most workers at once; above min_workers the group scales on the backlog.")
    warm_pool_size: int = option(
        1, whole_number("warm_pool_size", 0, MAX_WORKERS_LIMIT),
        "Stopped, installed instances kept ready when the group can grow (max_workers > "
        "min_workers, or min_workers = 0); each costs its 10 GB volume, about 0.80 USD a "
        "month. 0: no warm pool.")
    instance_type: str = option(
        "t2.micro", parse_instance_type, "EC2 instance type of the workers.")
    retention_days: int = option(
        7, whole_number("retention_days", 1, 3650),
        "Days job inputs, outputs and stored results are kept in the bucket.")
    alarm_email: str | None = option(
        None, parse_email, "Address that receives the alarms (confirm the e-mail once).")
    # SQS allows 0..43200 s; 0 would hand a job to every worker at once.
    visibility_timeout: int = option(
        contract.VISIBILITY_TIMEOUT, whole_number("visibility_timeout", 1, 43200),
        "Seconds a received job stays hidden from other workers (renewed while it runs).")

    @property
    def reply_queue_prefix(self) -> str:
        return contract.reply_queue_prefix(self.stack_name)

    @property
    def worker_group_name(self) -> str:
        return contract.worker_group_name(self.stack_name)

    @property
    def warm_pool(self) -> int:
        """Stopped instances the warm pool keeps: 0 when the group cannot use one."""
        elastic = self.max_workers > self.min_workers or self.min_workers == 0
        return self.warm_pool_size if elastic else 0


OPTIONS = tuple(f.name for f in fields(StackConfig))


def config_from_context(context: Mapping[str, Any]) -> StackConfig:
    """Build the StackConfig from context values (strings from -c, or JSON values from cdk.json).

    Missing or empty values take the defaults.
    """
    values = {
        f.name: f.metadata["parse"](str(context[f.name]))
        for f in fields(StackConfig)
        if context.get(f.name) not in (None, "")
    }
    config = StackConfig(**values)
    if config.min_workers > config.max_workers:
        raise ConfigError(
            f"min_workers {config.min_workers} is above max_workers {config.max_workers}"
        )
    return config


def options_table(sections: str = "") -> str:
    """The options as a Markdown table, each name linking to `sections`#name (the README and
    docs/deploy.md carry this text; print it with `python -m infra.config [PAGE]`)."""
    rows = ["| option | default | allowed | what it does |", "| --- | --- | --- | --- |"]
    for f in fields(StackConfig):
        allowed = f.metadata["parse"].__doc__.strip()
        default = "none" if f.default is None else f"`{f.default}`"
        name = f"[`{f.name}`]({sections}#{f.name})"
        rows.append(f"| {name} | {default} | {allowed} | {f.metadata['doc']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    import sys

    print(options_table(*sys.argv[1:2]))
