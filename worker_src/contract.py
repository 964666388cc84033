"""The names every side agrees on: stack outputs, WQW_* variables, S3 layout, metric names.

Standard library only, and the one definition of each: infra writes them into the
template and the user data, the worker reads them, the client and the local stack
look them up. (The message format itself lives in wire.py.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_STACK_NAME = "web-queue-worker"

# ---- defaults the worker and the stack share (one home for each) --------------------

#: A job message that fails this many receives goes to the dead-letter queue.
MAX_RECEIVE_COUNT = 3

#: Seconds a received job stays hidden from other workers; a worker renews it while the job
#: runs, so it bounds only how long a dead worker's jobs wait. The stack's visibility_timeout.
VISIBILITY_TIMEOUT = 120

#: MiB of memory a worker lets its jobs use (decoded pixels, parsed numbers); a t2.micro has
#: 1 GiB, of which the OS, the agents and the worker's own code take the rest.
MEMORY_BUDGET_MB = 400

#: MiB the worker process itself needs beside its jobs' budget (Python, numpy, Pillow,
#: scikit-image, boto3, one received batch): the service's memory ceiling (systemd MemoryMax)
#: is MEMORY_BUDGET_MB + WORKER_BASE_MEMORY_MB.
WORKER_BASE_MEMORY_MB = 250

#: Pixels an image may have before it is refused as too large, checked from its header
#: (100 MP photos pass); the worker's WQW_MAX_PIXELS replaces it.
MAX_PIXELS = 120_000_000

#: Seconds from launching a new instance to its worker's first receive (boot, install.sh's
#: packages and venv): the group's default instance warm-up and the stuck-backlog alarm's
#: allowance for a replacement. An estimate (docs/scaling.md).
LAUNCH_SECONDS = 150

#: Seconds from starting an installed, stopped instance of the warm pool to its worker's first
#: receive (boot and the worker's imports; nothing is installed). AWS quotes "as little as
#: 30 s" for warm pools; docs/scaling.md gives the sources.
WARM_START_SECONDS = 40

#: Waiting jobs that justify one more worker: the alarm policy's step and the producer's and
#: workers' capacity raise (worker_src/capacity.py) use the same ratio.
JOBS_PER_WORKER = 75


def service_memory_max_mb(memory_budget_mb: int = MEMORY_BUDGET_MB) -> int:
    """The worker service's memory ceiling (systemd MemoryMax) for a job budget in MiB."""
    return memory_budget_mb + WORKER_BASE_MEMORY_MB


def reply_queue_prefix(stack_name: str) -> str:
    """Reply queues are named <prefix><random>; workers may send only to these.

    The underscore is a character no stack name can hold ([A-Za-z][-A-Za-z0-9]*), so no
    other stack's queues, and no queue named like another stack's, share the prefix.
    """
    return f"{stack_name}_reply_"


def worker_group_name(stack_name: str) -> str:
    """The worker Auto Scaling group's name (fixed, so the role can name it before it exists)."""
    return f"{stack_name}-workers"


class StackOutput:
    """CloudFormation output keys of the stack (read with describe_stacks)."""

    REQUEST_QUEUE_URL = "RequestQueueUrl"
    DEAD_LETTER_QUEUE_URL = "DeadLetterQueueUrl"
    BUCKET_NAME = "BucketName"
    REPLY_QUEUE_PREFIX = "ReplyQueuePrefix"
    WORKER_GROUP_NAME = "WorkerGroupName"
    MAX_RECEIVE_COUNT = "MaxReceiveCount"
    VISIBILITY_TIMEOUT = "VisibilityTimeout"
    LOG_GROUP_NAME = "LogGroupName"
    # Only when the stack was deployed with ssh_cidr (no key pair exists otherwise).
    KEY_PAIR_ID = "KeyPairId"
    PRIVATE_KEY_PARAMETER = "PrivateKeyParameter"
    DASHBOARD_URL = "DashboardUrl"
    METRIC_NAMESPACE = "MetricNamespace"

    # What a client cannot work without.
    REQUIRED = (REQUEST_QUEUE_URL, DEAD_LETTER_QUEUE_URL, BUCKET_NAME, REPLY_QUEUE_PREFIX)


class Env:
    """The worker's environment variables (user data writes them; the local stack sets them)."""

    REQUEST_QUEUE_URL = "WQW_REQUEST_QUEUE_URL"
    DEAD_LETTER_QUEUE_URL = "WQW_DEAD_LETTER_QUEUE_URL"
    BUCKET = "WQW_BUCKET"
    REPLY_QUEUE_PREFIX = "WQW_REPLY_QUEUE_PREFIX"
    MAX_RECEIVE_COUNT = "WQW_MAX_RECEIVE_COUNT"
    VISIBILITY_TIMEOUT = "WQW_VISIBILITY_TIMEOUT"
    WAIT_SECONDS = "WQW_WAIT_SECONDS"
    WORKER_GROUP = "WQW_WORKER_GROUP"
    MAX_PIXELS = "WQW_MAX_PIXELS"
    MEMORY_BUDGET_MB = "WQW_MEMORY_BUDGET_MB"
    # Seconds: lowers every kind's time limit (registry.Kind.time_limit_s) on this worker.
    TIME_LIMIT_S = "WQW_TIME_LIMIT_S"
    METRIC_NAMESPACE = "WQW_METRIC_NAMESPACE"
    READY_FILE = "WQW_READY_FILE"
    # The worker's EC2 instance id when it cannot be read from the instance metadata (the
    # local stack runs one worker per instance of its emulated group).
    INSTANCE_ID = "WQW_INSTANCE_ID"
    # The client's default stack name.
    STACK = "WQW_STACK"

    # Stack output that sets each variable (the local stack's workers get them this way).
    FROM_OUTPUTS = {
        REQUEST_QUEUE_URL: StackOutput.REQUEST_QUEUE_URL,
        DEAD_LETTER_QUEUE_URL: StackOutput.DEAD_LETTER_QUEUE_URL,
        BUCKET: StackOutput.BUCKET_NAME,
        REPLY_QUEUE_PREFIX: StackOutput.REPLY_QUEUE_PREFIX,
        MAX_RECEIVE_COUNT: StackOutput.MAX_RECEIVE_COUNT,
        VISIBILITY_TIMEOUT: StackOutput.VISIBILITY_TIMEOUT,
        METRIC_NAMESPACE: StackOutput.METRIC_NAMESPACE,
    }


class MessageAttribute:
    """SQS message attributes the stack sets (the body stays as the client sent it)."""

    # On a dead letter the worker moved itself: why (a code and a sentence).
    REASON = "error"
    # On a job put back from the dead-letter queue by `dlq redrive`: store its result in S3
    # too, where the redrive removed the stale one (docs/dead-letters.md).
    REDRIVEN = "redriven"


def string_attributes(message: Mapping[str, Any]) -> dict[str, str]:
    """A received message's string attributes by name."""
    return {name: value["StringValue"]
            for name, value in message.get("MessageAttributes", {}).items()
            if "StringValue" in value}


# ---- the bucket's layout: every key carries the job id ----------------------------

INPUTS = "inputs/"  # client -> worker: inputs/<job_id>/<name>
OUTPUTS = "outputs/"  # worker -> client: outputs/<job_id>/<name>
RESULTS = "results/"  # worker -> client: results/<job_id>.json
CANCELS = "cancels/"  # client -> worker: cancels/<job_id>, a job's cancel marker
RUNNING = "running/"  # worker -> client: running/<job_id>.json, a --no-wait job's running state
JOB_PREFIXES = (INPUTS, OUTPUTS, RESULTS, CANCELS, RUNNING)


def input_prefix(job_id: str) -> str:
    return f"{INPUTS}{job_id}/"


def input_key(job_id: str, name: str) -> str:
    return f"{INPUTS}{job_id}/{name}"


def args_key(job_id: str) -> str:
    """Where a job's arguments go when they do not fit in one SQS message."""
    return input_key(job_id, "args.json")


def output_name(stem: str, label: str, suffix: str) -> str:
    """An output file's name: <stem>-<label><suffix>, e.g. photo-gamma.jpg.

    The worker names the object with the kind's name as label; the client names the
    download alike (the `equalize` shortcut writes the label "equalized").
    """
    return f"{stem}-{label}{suffix}"


def output_prefix(job_id: str) -> str:
    return f"{OUTPUTS}{job_id}/"


def output_key(job_id: str, name: str) -> str:
    return f"{OUTPUTS}{job_id}/{name}"


def result_key(job_id: str) -> str:
    return f"{RESULTS}{job_id}.json"


def cancel_key(job_id: str) -> str:
    """The marker a cancel puts before it tells the workers (docs/cancel.md)."""
    return f"{CANCELS}{job_id}"


# A worker rewrites a running job's running/ record at most this often; a record older than
# twice this belongs to a worker that died.
RUNNING_REWRITE_SECONDS = 30.0


def running_key(job_id: str) -> str:
    """A running job's last word, for jobs nobody waits for (`result JOB_ID`)."""
    return f"{RUNNING}{job_id}.json"


# ---- per-job metrics (CloudWatch Embedded Metric Format) ---------------------------

def metric_namespace(stack_name: str) -> str:
    return f"WebQueueWorker/{stack_name}"


class Metric:
    """Metric names and dimensions of the one log line the worker writes per job."""

    JOBS = "Jobs"  # Count, 1 per job
    QUEUED = "QueuedSeconds"
    FETCH = "FetchSeconds"
    RUN = "RunSeconds"
    STORE = "StoreSeconds"
    INPUT_BYTES = "InputBytes"
    KIND = "Kind"  # dimension: the job kind
    OUTCOME = "Outcome"  # dimension: "ok" or the error code
    # Dimension sets: by kind and outcome, and by kind alone (for percentiles by kind).
    DIMENSION_SETS = ((KIND, OUTCOME), (KIND,))
