"""The worker's settings, read from environment variables (names in contract.Env).

On an instance, user data writes them to the systemd unit's EnvironmentFile;
the local stack sets them for its worker processes. Besides these, the worker
reads AWS_REGION, and the AWS SDK AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import contract
from .contract import MAX_RECEIVE_COUNT, Env


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class WorkerConfig:
    request_queue_url: str
    dead_letter_queue_url: str
    bucket: str
    reply_queue_prefix: str
    max_receive_count: int = MAX_RECEIVE_COUNT
    visibility_timeout: int = contract.VISIBILITY_TIMEOUT
    wait_seconds: int = 20
    worker_group: str | None = None
    max_pixels: int | None = None
    memory_budget_mb: int = contract.MEMORY_BUDGET_MB
    time_limit_s: int | None = None
    metric_namespace: str | None = None
    ready_file: Path | None = None
    instance_id: str | None = None

    @property
    def memory_budget_bytes(self) -> int:
        return self.memory_budget_mb * 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WorkerConfig:
        required = {
            "request_queue_url": Env.REQUEST_QUEUE_URL,
            "dead_letter_queue_url": Env.DEAD_LETTER_QUEUE_URL,
            "bucket": Env.BUCKET,
            "reply_queue_prefix": Env.REPLY_QUEUE_PREFIX,
        }
        missing = [name for name in required.values() if not env.get(name)]
        if missing:
            raise ConfigError(f"missing environment variable(s): {', '.join(missing)}")
        values: dict = {field: env[name] for field, name in required.items()}
        for field, name in (("max_receive_count", Env.MAX_RECEIVE_COUNT),
                            ("visibility_timeout", Env.VISIBILITY_TIMEOUT),
                            ("wait_seconds", Env.WAIT_SECONDS),
                            ("max_pixels", Env.MAX_PIXELS),
                            ("memory_budget_mb", Env.MEMORY_BUDGET_MB),
                            ("time_limit_s", Env.TIME_LIMIT_S)):
            if env.get(name):
                values[field] = _positive_int(name, env[name])
        if not 0 < values.get("wait_seconds", 20) <= 20:
            raise ConfigError(f"{Env.WAIT_SECONDS} must be between 1 and 20 "
                              f"(the SQS long-poll limit)")
        for field, name in (("worker_group", Env.WORKER_GROUP),
                            ("metric_namespace", Env.METRIC_NAMESPACE),
                            ("instance_id", Env.INSTANCE_ID)):
            if env.get(name):
                values[field] = env[name]
        if env.get(Env.READY_FILE):
            values["ready_file"] = Path(env[Env.READY_FILE])
        return cls(**values)


def _positive_int(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {text!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value
