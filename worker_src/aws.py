"""The one place that builds boto3 sessions and clients, for the worker and the client alike.

One botocore Config: a short connect timeout (an unreachable endpoint fails in seconds),
a read timeout above the 20 s long poll, and the SDK's standard retry mode. Tests and
fault injection patch `make_client` here and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config

AWS_CONFIG = Config(connect_timeout=5, read_timeout=30,
                    retries={"mode": "standard", "max_attempts": 4})


def region_from_environment(env: Mapping[str, str] = os.environ) -> str | None:
    """AWS_REGION (what user data writes, and most AWS SDKs read), else AWS_DEFAULT_REGION.

    boto3 reads only the second by itself.
    """
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None


def make_session(profile: str | None = None, region: str | None = None) -> boto3.Session:
    return boto3.Session(profile_name=profile, region_name=region or region_from_environment())


def make_client(session: boto3.Session, service: str, endpoint_url: str | None = None) -> Any:
    """A client for `service`; endpoint_url None: the SDK's own (AWS_ENDPOINT_URL or AWS)."""
    return session.client(service, endpoint_url=endpoint_url, config=AWS_CONFIG)
