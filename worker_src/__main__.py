"""Run the worker: `python -m worker_src` (settings from WQW_* environment variables)."""

import logging
import sys

import boto3
from botocore.config import Config

from .config import ConfigError, WorkerConfig, region_from_environment
from .protection import ScaleInProtection, instance_id_from_metadata
from .worker import Worker


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        config = WorkerConfig.from_env()
    except ConfigError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    # Connect and read timeouts above the 20 s long poll; retries with backoff.
    aws = Config(connect_timeout=5, read_timeout=config.wait_seconds + 10,
                 retries={"mode": "standard", "max_attempts": 5})
    session = boto3.Session(region_name=region_from_environment())
    protection = ScaleInProtection(None, None, None)
    if config.worker_group:
        protection = ScaleInProtection(session.client("autoscaling", config=aws),
                                       config.worker_group, instance_id_from_metadata())
    worker = Worker(config, session.client("sqs", config=aws), session.client("s3", config=aws),
                    protection)
    worker.install_signal_handlers()
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
