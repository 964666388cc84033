"""The worker's settings, read from environment variables.

On an instance, user data writes them to the systemd unit's EnvironmentFile;
the local stack sets them for its worker processes. Besides these, the worker
reads AWS_REGION, and the AWS SDK AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class ConfigError(Exception):
    pass


def region_from_environment(env: Mapping[str, str] = os.environ) -> str | None:
    """AWS_REGION (what user data writes, and most AWS SDKs read), else AWS_DEFAULT_REGION.

    boto3 reads only the second by itself.
    """
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None


@dataclass(frozen=True)
class WorkerConfig:
    request_queue_url: str
    dead_letter_queue_url: str
    bucket: str
    reply_queue_prefix: str
    max_receive_count: int = 3
    visibility_timeout: int = 120
    wait_seconds: int = 20
    worker_group: str | None = None
    max_pixels: int | None = None
    ready_file: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WorkerConfig:
        required = {
            "request_queue_url": "WQW_REQUEST_QUEUE_URL",
            "dead_letter_queue_url": "WQW_DEAD_LETTER_QUEUE_URL",
            "bucket": "WQW_BUCKET",
            "reply_queue_prefix": "WQW_REPLY_QUEUE_PREFIX",
        }
        missing = [name for name in required.values() if not env.get(name)]
        if missing:
            raise ConfigError(f"missing environment variable(s): {', '.join(missing)}")
        values: dict = {field: env[name] for field, name in required.items()}
        for field, name in (("max_receive_count", "WQW_MAX_RECEIVE_COUNT"),
                            ("visibility_timeout", "WQW_VISIBILITY_TIMEOUT"),
                            ("wait_seconds", "WQW_WAIT_SECONDS"),
                            ("max_pixels", "WQW_MAX_PIXELS")):
            if env.get(name):
                values[field] = _positive_int(name, env[name])
        if not 0 < values.get("wait_seconds", 20) <= 20:
            raise ConfigError("WQW_WAIT_SECONDS must be between 1 and 20 (the SQS long-poll limit)")
        if env.get("WQW_WORKER_GROUP"):
            values["worker_group"] = env["WQW_WORKER_GROUP"]
        if env.get("WQW_READY_FILE"):
            values["ready_file"] = Path(env["WQW_READY_FILE"])
        return cls(**values)


def _positive_int(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {text!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value
