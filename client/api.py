"""The client library: find a deployed stack, submit jobs, wait for their results.

    with Client.connect("web-queue-worker") as client:
        [job_id] = client.submit([("stats", {"numbers": [3, 1, 2]})])
        for result in client.wait([job_id], timeout=60):
            print(result.value)

Each Client creates its own reply queue (`<stack>-reply-<random>`) on first
submit and deletes it on close; results are matched to jobs by job id.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from worker_src import wire
from worker_src.config import region_from_environment

DEFAULT_STACK = "web-queue-worker"
# A reply queue untouched for this long belongs to a run that died.
STALE_REPLY_QUEUE_SECONDS = 24 * 3600
# Images go up in one PUT, not in 8 MB parts that are each billed as a request
# (the worker refuses inputs over 200 MB).
SINGLE_PUT = TransferConfig(multipart_threshold=256 * 1024 * 1024)
# An unreachable endpoint fails in seconds, not minutes: short connect timeout, few retries.
# The read timeout stays above the 20 s long poll.
AWS_CONFIG = Config(connect_timeout=5, read_timeout=30,
                    retries={"mode": "standard", "max_attempts": 3})


class ClientFailure(Exception):
    """An error the CLI reports in one line, with its own exit code."""

    exit_code = 1


class UsageError(ClientFailure):
    exit_code = 2


class StackNotFound(ClientFailure):
    exit_code = 3


class WaitTimeout(ClientFailure):
    exit_code = 4

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


class AwsUnavailable(ClientFailure):
    exit_code = 5


@dataclass(frozen=True)
class StackInfo:
    """What the client needs of a stack: its CloudFormation outputs."""

    name: str
    request_queue_url: str
    dead_letter_queue_url: str
    bucket: str
    reply_queue_prefix: str
    worker_group: str | None = None
    log_group: str | None = None

    @classmethod
    def from_outputs(cls, name: str, outputs: dict[str, str]) -> StackInfo:
        required = ("RequestQueueUrl", "DeadLetterQueueUrl", "BucketName", "ReplyQueuePrefix")
        missing = [key for key in required if key not in outputs]
        if missing:
            raise StackNotFound(
                f"stack {name!r} lacks the outputs {', '.join(missing)}: is it a "
                f"web-queue-worker stack, and has its deployment finished?")
        return cls(
            name=name,
            request_queue_url=outputs["RequestQueueUrl"],
            dead_letter_queue_url=outputs["DeadLetterQueueUrl"],
            bucket=outputs["BucketName"],
            reply_queue_prefix=outputs["ReplyQueuePrefix"],
            worker_group=outputs.get("WorkerGroupName"),
            log_group=outputs.get("LogGroupName"),
        )


def find_stack(session: boto3.Session, stack_name: str,
               endpoint_url: str | None = None) -> StackInfo:
    cloudformation = session.client("cloudformation", endpoint_url=endpoint_url,
                                    config=AWS_CONFIG)
    try:
        stacks = aws_call(cloudformation.describe_stacks, StackName=stack_name)["Stacks"]
    except AwsUnavailable as exc:
        if "does not exist" in str(exc):
            raise StackNotFound(
                f"no stack named {stack_name!r} in region {session.region_name}: deploy it "
                f"with 'npx cdk deploy', or pass --stack / --region") from None
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return StackInfo.from_outputs(stack_name, outputs)


def aws_call(function: Any, **kwargs: Any) -> Any:
    """Call an AWS API, turning SDK errors into one-line AwsUnavailable failures."""
    try:
        return function(**kwargs)
    except NoRegionError:
        raise AwsUnavailable("no AWS region: set AWS_REGION or pass --region") from None
    except NoCredentialsError:
        raise AwsUnavailable("no AWS credentials: set AWS_PROFILE or run 'aws configure'") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsUnavailable(f"{error.get('Code')}: {error.get('Message')}") from None
    except (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError,
            ReadTimeoutError) as exc:
        raise AwsUnavailable(f"cannot reach AWS: {exc} (is the endpoint up? "
                             f"check AWS_ENDPOINT_URL, AWS_REGION and the network)") from None
    except BotoCoreError as exc:
        raise AwsUnavailable(str(exc)) from None


class Client:
    def __init__(self, session: boto3.Session, stack: StackInfo,
                 endpoint_url: str | None = None) -> None:
        self.session = session
        self.stack = stack
        self.endpoint_url = endpoint_url  # None: each service's own AWS endpoint
        self.sqs = session.client("sqs", endpoint_url=endpoint_url, config=AWS_CONFIG)
        self.s3 = session.client("s3", endpoint_url=endpoint_url, config=AWS_CONFIG)
        self.reply_queue_url: str | None = None
        self._pending: set[str] = set()  # submitted, no result yet
        self._arrived: dict[str, wire.Result] = {}  # received, not yet handed out

    @classmethod
    def connect(cls, stack_name: str = DEFAULT_STACK, *, profile: str | None = None,
                region: str | None = None, endpoint_url: str | None = None) -> Client:
        try:
            session = boto3.Session(profile_name=profile,
                                    region_name=region or region_from_environment())
        except BotoCoreError as exc:  # e.g. a profile that does not exist
            raise AwsUnavailable(str(exc)) from None
        return cls(session, find_stack(session, stack_name, endpoint_url), endpoint_url)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Delete this run's reply queue (results not yet received are in S3 if undeliverable)."""
        if self.reply_queue_url is not None:
            url, self.reply_queue_url = self.reply_queue_url, None
            try:
                self.sqs.delete_queue(QueueUrl=url)
            except (ClientError, BotoCoreError):
                pass  # a stale queue is removed by a later run or 'cleanup'

    # ---- submitting ------------------------------------------------------------

    def submit(self, jobs: Iterable[tuple[str, dict[str, Any]]], *, wait: bool = True,
               job_ids: Iterable[str] | None = None) -> list[str]:
        """Send jobs (kind, args) to the stack in batches of 10; return their ids.

        With wait=False nobody waits for a reply: results go to S3 (`result`).
        """
        reply_to = self._reply_queue() if wait else None
        ids = iter(job_ids) if job_ids is not None else None
        bodies: list[tuple[str, str]] = []
        for kind, args in jobs:
            job_id = next(ids) if ids is not None else wire.new_job_id()
            job = wire.Job(job_id=job_id, kind=kind, args=args, reply_to=reply_to,
                           submitted_at=time.time())
            body = wire.encode_job(job)
            if len(body.encode()) > wire.MAX_MESSAGE_BYTES:
                body = self._args_through_s3(job)
            bodies.append((job_id, body))
        self._send_batches(bodies)
        if wait:
            self._pending.update(job_id for job_id, _ in bodies)
        return [job_id for job_id, _ in bodies]

    def _args_through_s3(self, job: wire.Job) -> str:
        key = f"inputs/{job.job_id}/args.json"
        aws_call(self.s3.put_object, Bucket=self.stack.bucket, Key=key,
                 Body=json.dumps(job.args, separators=(",", ":")).encode(),
                 ContentType="application/json")
        return wire.encode_job(wire.Job(job_id=job.job_id, kind=job.kind, args=None,
                                        reply_to=job.reply_to, submitted_at=job.submitted_at,
                                        args_key=key))

    def _send_batches(self, bodies: list[tuple[str, str]]) -> None:
        batch: list[tuple[str, str]] = []
        size = 0
        for job_id, body in bodies:
            body_size = len(body.encode())
            if batch and (len(batch) == 10 or size + body_size > wire.MAX_MESSAGE_BYTES):
                self._send_batch(batch)
                batch, size = [], 0
            batch.append((job_id, body))
            size += body_size
        if batch:
            self._send_batch(batch)

    def _send_batch(self, batch: list[tuple[str, str]]) -> None:
        entries = [{"Id": str(i), "MessageBody": body} for i, (_, body) in enumerate(batch)]
        for _attempt in range(5):
            response = aws_call(self.sqs.send_message_batch,
                                QueueUrl=self.stack.request_queue_url, Entries=entries)
            failed = {f["Id"] for f in response.get("Failed", [])}
            if not failed:
                return
            entries = [e for e in entries if e["Id"] in failed]
            time.sleep(0.2)
        raise AwsUnavailable(f"SQS refused {len(entries)} job(s) after 5 attempts")

    def _reply_queue(self) -> str:
        if self.reply_queue_url is None:
            name = f"{self.stack.reply_queue_prefix}{uuid.uuid4().hex[:16]}"
            self.remove_stale_reply_queues()
            response = aws_call(self.sqs.create_queue, QueueName=name, Attributes={
                "MessageRetentionPeriod": str(4 * 24 * 3600),
                "SqsManagedSseEnabled": "true",
            })
            self.reply_queue_url = response["QueueUrl"]
        return self.reply_queue_url

    def remove_stale_reply_queues(
            self, older_than_seconds: float = STALE_REPLY_QUEUE_SECONDS) -> list[str]:
        """Delete this stack's reply queues that crashed runs left behind."""
        response = aws_call(self.sqs.list_queues, QueueNamePrefix=self.stack.reply_queue_prefix)
        removed = []
        for url in response.get("QueueUrls", []):
            if url == self.reply_queue_url:
                continue
            try:
                attributes = self.sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["CreatedTimestamp"])["Attributes"]
                if time.time() - float(attributes["CreatedTimestamp"]) >= older_than_seconds:
                    self.sqs.delete_queue(QueueUrl=url)
                    removed.append(url)
            except ClientError:
                continue  # deleted meanwhile by another run
        return removed

    # ---- waiting ---------------------------------------------------------------

    def wait(self, job_ids: Iterable[str], timeout: float) -> Iterator[wire.Result]:
        """Yield each job's result once, as it arrives; raise WaitTimeout for the rest."""
        waiting = set(job_ids)
        unknown = waiting - self._pending - self._arrived.keys()
        if unknown:
            raise UsageError(f"job(s) not submitted by this client: {', '.join(sorted(unknown))}")
        deadline = time.monotonic() + timeout
        looked_in_s3 = False
        while True:
            for job_id in sorted(waiting & self._arrived.keys()):
                waiting.discard(job_id)
                yield self._arrived.pop(job_id)
            if not waiting:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0 and not looked_in_s3:
                looked_in_s3 = True
                self._collect_stored_results(waiting)
                continue
            if remaining <= 0:
                raise WaitTimeout(
                    f"timed out after {timeout:g} s waiting for {len(waiting)} job(s)",
                    sorted(waiting))
            self._receive_results(wait_seconds=max(1, min(20, round(remaining))))

    def _collect_stored_results(self, job_ids: set[str]) -> None:
        """Take results from S3 for jobs whose reply never came.

        A job whose workers all died holding it ends in the dead-letter queue with
        no reply; its last worker left an `internal` error result in S3.
        """
        for job_id in sorted(job_ids):
            try:
                result = self.fetch_result(job_id)
            except (ClientFailure, wire.WireError):
                continue
            self._pending.discard(job_id)
            self._arrived[job_id] = result

    def _receive_results(self, wait_seconds: int) -> None:
        queue_url = self._reply_queue()
        response = aws_call(self.sqs.receive_message, QueueUrl=queue_url,
                            MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds)
        messages = response.get("Messages", [])
        if not messages:
            return
        aws_call(self.sqs.delete_message_batch, QueueUrl=queue_url,
                 Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                          for i, m in enumerate(messages)])
        for message in messages:
            try:
                result = wire.decode_result(message["Body"])
            except wire.WireError:
                continue  # not a result: nothing waits on it
            if result.job_id in self._pending:  # else a duplicate delivery
                self._pending.discard(result.job_id)
                self._arrived[result.job_id] = result

    def fetch_result(self, job_id: str) -> wire.Result:
        """Read a job's result from S3 (jobs sent with wait=False, or undeliverable)."""
        try:
            body = self.s3.get_object(Bucket=self.stack.bucket,
                                      Key=f"results/{job_id}.json")["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise ClientFailure(
                    f"no stored result for job {job_id}: it is still queued or running, "
                    f"its result was delivered to a waiting client, or it expired") from None
            raise AwsUnavailable(str(exc)) from None
        return wire.decode_result(body)

    def submit_images(self, images: list[Path], *, wait: bool = True,
                      on_upload: Callable[[Path], None] | None = None) -> list[str]:
        """Upload images (8 at a time) and submit one equalize job for each."""
        job_ids = [wire.new_job_id() for _ in images]

        def upload(job_id: str, image: Path) -> str:
            key = self.upload_input(job_id, image)
            if on_upload is not None:
                on_upload(image)
            return key

        with ThreadPoolExecutor(max_workers=8) as pool:
            keys = list(pool.map(upload, job_ids, images))
        jobs = [("equalize", {"input_key": key, "output_key": output_key_for(key)})
                for key in keys]
        return self.submit(jobs, wait=wait, job_ids=job_ids)

    def recent_log_lines(self, seconds: float, limit: int) -> list[dict[str, str]]:
        """The newest `limit` lines of the stack's log group from the last `seconds`."""
        logs = self.session.client("logs", endpoint_url=self.endpoint_url, config=AWS_CONFIG)
        start = int((time.time() - seconds) * 1000)
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"logGroupName": self.stack.log_group, "startTime": start}
        for _page in range(100):  # bounded: at most 100 pages of up to 10,000 events
            response = aws_call(logs.filter_log_events, **kwargs)
            events += response.get("events", [])
            events = events[-limit:]
            if not response.get("nextToken"):
                break
            kwargs["nextToken"] = response["nextToken"]
        return [{"time": time.strftime("%Y-%m-%d %H:%M:%S",
                                       time.localtime(event["timestamp"] / 1000)),
                 "stream": event.get("logStreamName", ""),
                 "message": event["message"].rstrip("\n")} for event in events]

    # ---- files -----------------------------------------------------------------

    def upload_input(self, job_id: str, path: Path) -> str:
        key = f"inputs/{job_id}/{safe_name(path.name)}"
        aws_call(self.s3.upload_file, Filename=str(path), Bucket=self.stack.bucket, Key=key,
                 Config=SINGLE_PUT)
        return key

    def download_output(self, key: str, destination: Path) -> None:
        """Stream the object to `destination`; a failed download leaves no partial file.

        One GET (download_file would send a HeadObject first).
        """
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        body = aws_call(self.s3.get_object, Bucket=self.stack.bucket, Key=key)["Body"]
        try:
            with open(partial, "wb") as file:
                shutil.copyfileobj(body, file, length=1024 * 1024)
            partial.replace(destination)
        except BotoCoreError as exc:
            raise AwsUnavailable(f"download of {key} failed: {exc}") from None
        finally:
            partial.unlink(missing_ok=True)


def output_key_for(input_key: str) -> str:
    """inputs/<job>/<name> -> outputs/<job>/<name>: every key carries the job id."""
    return "outputs/" + input_key.split("/", 1)[1]


def safe_name(name: str) -> str:
    """A file name that is safe as the last part of an S3 key."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return cleaned.lstrip(".") or "file"
