"""Run the worker: `python -m worker_src` (settings from WQW_* environment variables)."""

from __future__ import annotations

import logging
import sys

from . import aws, logs
from .broker import SqsBroker
from .capacity import BacklogSignal
from .config import ConfigError, WorkerConfig
from .executor import Executor
from .protection import ScaleInProtection, instance_id_from_metadata
from .store import S3Store
from .worker import Worker, worker_identity


def build_worker(config: WorkerConfig, *, worker_class: type[Worker] = Worker,
                 executor_class: type[Executor] = Executor) -> Worker:
    """The worker with its broker, store, executor and scale-in protection (classes overridable)."""
    session = aws.make_session()
    # The work horse makes its own client from the same session: fast (models loaded), and
    # with its own connections.
    store = S3Store(aws.make_client(session, "s3"), config.bucket,
                    connect=lambda _: aws.make_client(session, "s3"))
    broker = SqsBroker(aws.make_client(session, "sqs"), config.request_queue_url,
                       config.dead_letter_queue_url, config.reply_queue_prefix)
    executor = executor_class(store, identity=worker_identity(), max_pixels=config.max_pixels,
                              memory_budget_bytes=config.memory_budget_bytes,
                              time_limit_s=config.time_limit_s)
    protection = ScaleInProtection(None, None, None)
    backlog = BacklogSignal(None, None, None, "")
    if config.worker_group:
        autoscaling = aws.make_client(session, "autoscaling")
        protection = ScaleInProtection(autoscaling, config.worker_group,
                                       config.instance_id or instance_id_from_metadata())
        backlog = BacklogSignal(autoscaling, aws.make_client(session, "sqs"),
                                config.worker_group, config.request_queue_url)
    return worker_class(config, broker, store, executor, protection, backlog)


def main(**classes: type) -> int:
    logs.configure()
    logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        config = WorkerConfig.from_env()
    except ConfigError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    worker = build_worker(config, **classes)
    worker.install_signal_handlers()
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
