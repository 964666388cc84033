"""The per-job metric line: one CloudWatch Embedded Metric Format (EMF) object per finished job.

    {"_aws": {"Timestamp": 1764219000123, "CloudWatchMetrics": [{
         "Namespace": "WebQueueWorker/<stack>",
         "Dimensions": [["Kind", "Outcome"], ["Kind"]],
         "Metrics": [{"Name": "QueuedSeconds", "Unit": "Seconds"}, ...]}]},
     "Kind": "stats", "Outcome": "ok", "QueuedSeconds": 0.012, ..., "Jobs": 1,
     "JobId": "<uuid>", "Attempt": 1, "Worker": "host:pid"}

The worker writes it bare, alone on its line, on stdout (its other log lines go to stderr with
a timestamp in front); the CloudWatch agent ships the log file and CloudWatch Logs extracts the
metrics from every event that is such an object: no PutMetricData request. Names and dimension
sets are contract.Metric's. docs/metrics.md says why this is written here, not with a library.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Collection
from typing import Any

from . import wire
from .contract import Metric

SECONDS, BYTES, COUNT = "Seconds", "Bytes", "Count"
OK_OUTCOME = "ok"
# The Kind dimension of a job whose kind no worker runs: every distinct dimension value is a
# custom metric that CloudWatch bills, so a client cannot create them by sending bogus kinds.
UNKNOWN_KIND = "unknown"
# Metric name -> the result's timing key; a step the job never reached has no value.
TIMINGS = ((Metric.QUEUED, "queued_s"), (Metric.FETCH, "fetch_s"), (Metric.RUN, "run_s"),
           (Metric.STORE, "store_s"))


def job_metrics(namespace: str, kind: str, result: wire.Result, input_bytes: int | None,
                *, timestamp: float | None = None) -> dict[str, Any]:
    """The EMF document of one finished job (values from its result's own timing)."""
    values: dict[str, float | int] = {}
    units: dict[str, str] = {}
    for name, key in TIMINGS:
        value = result.timing.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values[name], units[name] = value, SECONDS
    if input_bytes is not None:
        values[Metric.INPUT_BYTES], units[Metric.INPUT_BYTES] = input_bytes, BYTES
    values[Metric.JOBS], units[Metric.JOBS] = 1, COUNT
    stamp = time.time() if timestamp is None else timestamp
    return {
        "_aws": {
            "Timestamp": int(stamp * 1000),
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [list(dimensions) for dimensions in Metric.DIMENSION_SETS],
                "Metrics": [{"Name": name, "Unit": units[name]} for name in values],
            }],
        },
        Metric.KIND: kind,
        Metric.OUTCOME: OK_OUTCOME if result.ok else str(result.error_code),
        **values,
        # Not metrics: searchable with CloudWatch Logs Insights beside them.
        "JobId": result.job_id,
        "Attempt": result.attempt,
        "Worker": result.worker,
    }


def kind_dimension(kind: str | None, known: Collection[str]) -> str:
    return kind if kind in known else UNKNOWN_KIND


class _StdoutHandler(logging.StreamHandler):
    """Bare messages on whatever sys.stdout is when a line is written."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout  # under the handler's lock (Handler.handle)
        super().emit(record)


def metric_logger() -> logging.Logger:
    """The metric lines' own logger: on stdout, not propagated to the timestamped log."""
    logger = logging.getLogger("worker.metrics")
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        logger.addHandler(_StdoutHandler())
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def write(document: dict[str, Any]) -> None:
    """Log one metric line (compact JSON, one line)."""
    metric_logger().info(json.dumps(document, separators=(",", ":")))
