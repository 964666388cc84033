"""The client library: find a deployed stack, submit jobs of any kind, wait for their results.

    with Client.connect("web-queue-worker") as client:
        [job_id] = client.submit([("stats", {"numbers": [3, 1, 2]})])
        for result in client.wait([job_id], timeout=60):
            print(result.value)

        job_ids = client.submit_files("gamma", [Path("photo.jpg")], {"gamma": 0.5})

Each Client creates its own reply queue (`<stack>-reply-<random>`) on first
submit and deletes it on close; results are matched to jobs by job id.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from worker_src import aws, contract, registry, wire
from worker_src.capacity import raise_capacity
from worker_src.contract import Output

from . import lifecycle
from .errors import (  # noqa: F401 - the library's errors, importable from here
    AwsUnavailable,
    ClientFailure,
    StackNotFound,
    UsageError,
    WaitTimeout,
    aws_call,
)
from .names import safe_name

DEFAULT_STACK = contract.DEFAULT_STACK_NAME
# A reply queue untouched for this long belongs to a run that died.
STALE_REPLY_QUEUE_SECONDS = 24 * 3600
# Files go up in one PUT, not in 8 MB parts that are each billed as a request
# (kinds take at most 200 MB per file).
SINGLE_PUT = TransferConfig(multipart_threshold=256 * 1024 * 1024)


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
    dashboard_url: str | None = None

    @classmethod
    def from_outputs(cls, name: str, outputs: dict[str, str]) -> StackInfo:
        missing = [key for key in Output.REQUIRED if key not in outputs]
        if missing:
            raise StackNotFound(
                f"stack {name!r} lacks the outputs {', '.join(missing)}: is it a "
                f"web-queue-worker stack, and has its deployment finished?")
        return cls(
            name=name,
            request_queue_url=outputs[Output.REQUEST_QUEUE_URL],
            dead_letter_queue_url=outputs[Output.DEAD_LETTER_QUEUE_URL],
            bucket=outputs[Output.BUCKET_NAME],
            reply_queue_prefix=outputs[Output.REPLY_QUEUE_PREFIX],
            worker_group=outputs.get(Output.WORKER_GROUP_NAME),
            log_group=outputs.get(Output.LOG_GROUP_NAME),
            dashboard_url=outputs.get(Output.DASHBOARD_URL),
        )


def find_stack(session: boto3.Session, stack_name: str,
               endpoint_url: str | None = None) -> StackInfo:
    cloudformation = aws.make_client(session, "cloudformation", endpoint_url)
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


def find_kind(name: str) -> registry.Kind:
    """The registered kind called `name`; UsageError naming the known ones if none."""
    try:
        return registry.get_kind(name)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


def check_args(kind: registry.Kind, args: Mapping[str, Any]) -> dict[str, Any]:
    """`args` checked against the kind (file arguments as any string); UsageError if refused."""
    try:
        return kind.check_args(args)
    except registry.ArgError as exc:
        raise UsageError(exc.message) from None


class Client:
    def __init__(self, session: boto3.Session, stack: StackInfo,
                 endpoint_url: str | None = None) -> None:
        self.session = session
        self.stack = stack
        self.endpoint_url = endpoint_url  # None: each service's own AWS endpoint
        self.sqs = self.aws_client("sqs")
        self.s3 = self.aws_client("s3")
        self.reply_queue_url: str | None = None
        self.closed = False
        self._lock = threading.Lock()
        self._pending: set[str] = set()  # submitted, no result yet
        self._arrived: dict[str, wire.Result] = {}  # received, not yet handed out
        # Lifecycle words (client/lifecycle.py): the latest `running` word of each pending
        # job, the answers to this client's cancels; `on_word` hears that one came.
        self.running: dict[str, Any] = {}
        self.cancel_answers: dict[str, Any] = {}
        self.on_word: Callable[[], None] | None = None
        # Called with the pending job ids when Ctrl-C interrupts a `with` block (the CLI's
        # --cancel-on-interrupt / question).
        self.on_interrupt: Callable[[list[str]], None] | None = None

    @classmethod
    def connect(cls, stack_name: str = DEFAULT_STACK, *, profile: str | None = None,
                region: str | None = None, endpoint_url: str | None = None) -> Client:
        try:
            session = aws.make_session(profile, region)
        except BotoCoreError as exc:  # e.g. a profile that does not exist
            raise AwsUnavailable(str(exc)) from None
        return cls(session, find_stack(session, stack_name, endpoint_url), endpoint_url)

    def aws_client(self, service: str) -> Any:
        return aws.make_client(self.session, service, self.endpoint_url)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: Any, *_exc: Any) -> None:
        try:
            if exc_type is KeyboardInterrupt and self.on_interrupt is not None and self._pending:
                self.on_interrupt(sorted(self._pending))
        finally:
            self.close()

    def close(self) -> None:
        """Delete this run's reply queue (results not yet received are in S3 if undeliverable)."""
        self.closed = True
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
        if wait:  # before sending: a fast worker's reply must find its job pending
            with self._lock:
                self._pending.update(job_id for job_id, _ in bodies)
        self._send_batches(bodies)
        if self.stack.worker_group and bodies:  # workers now, not after CloudWatch's minutes
            raise_capacity(self.aws_client("autoscaling"), self.sqs, self.stack.worker_group,
                           self.stack.request_queue_url, at_least_waiting=len(bodies))
        return [job_id for job_id, _ in bodies]

    def submit_files(self, kind_name: str, inputs: list[Path], args: Mapping[str, Any] = {},
                     file_args: Mapping[str, Path] = {}, *, wait: bool = True,
                     on_upload: Callable[[Path], None] | None = None) -> list[str]:
        """One job of `kind_name` per input file (uploaded 8 at a time); their job ids.

        `file_args` are the kind's other file arguments (e.g. match's reference),
        uploaded once per job since every key carries its job id.
        """
        kind = find_kind(kind_name)
        if kind.main_input is None:
            raise UsageError(f"{kind_name} takes no input file")
        check_args(kind, {**args, kind.main_input: "x", **dict.fromkeys(file_args, "x")})
        job_ids = [wire.new_job_id() for _ in inputs]

        def upload(job_id: str, path: Path) -> dict[str, Any]:
            job_args = dict(args)
            job_args[kind.main_input] = self.upload(job_id, path.name, path)
            for name, other in file_args.items():
                job_args[name] = self.upload(job_id, f"{name}-{other.name}", other)
            if on_upload is not None:
                on_upload(path)
            return job_args

        with ThreadPoolExecutor(max_workers=8) as pool:
            all_args = list(pool.map(upload, job_ids, inputs))
        return self.submit([(kind_name, a) for a in all_args], wait=wait, job_ids=job_ids)

    def _args_through_s3(self, job: wire.Job) -> str:
        key = contract.args_key(job.job_id)
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
        with self._lock:
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
            for result in self.receive_results(wait_seconds=max(1, min(20, round(remaining)))):
                self._arrived[result.job_id] = result

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
            with self._lock:
                self._pending.discard(job_id)
            self._arrived[job_id] = result

    def receive_results(self, wait_seconds: int) -> list[wire.Result]:
        """One long poll of the reply queue: the results of this client's pending jobs.

        Each job's result is returned once; duplicates and strays are dropped. Once the
        client is closed there is no reply queue to poll: nothing is returned.
        """
        if self.closed:
            return []
        queue_url = self._reply_queue()
        response = aws_call(self.sqs.receive_message, QueueUrl=queue_url,
                            MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds)
        messages = response.get("Messages", [])
        if not messages:
            return []
        aws_call(self.sqs.delete_message_batch, QueueUrl=queue_url,
                 Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                          for i, m in enumerate(messages)])
        results = []
        words = 0
        for message in messages:
            try:
                result = wire.decode_result(message["Body"])
            except wire.WireError:
                lifecycle.take_word(self, message["Body"])  # running, cancel answers
                words += 1
                continue
            with self._lock:
                if result.job_id not in self._pending:
                    continue  # a duplicate delivery
                self._pending.discard(result.job_id)
            results.append(result)
        for result in results:
            self.running.pop(result.job_id, None)
        if words and self.on_word is not None:
            self.on_word()
        return results

    def fetch_result(self, job_id: str) -> wire.Result:
        """Read a job's result from S3 (jobs sent with wait=False, or undeliverable)."""
        try:
            body = self.s3.get_object(Bucket=self.stack.bucket,
                                      Key=contract.result_key(job_id))["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise ClientFailure(
                    f"no stored result for job {job_id}: it is still queued or running, "
                    f"its result was delivered to a waiting client, or it expired") from None
            raise AwsUnavailable(str(exc)) from None
        return wire.decode_result(body)

    # ---- files -----------------------------------------------------------------

    def upload(self, job_id: str, name: str, source: Path | BinaryIO) -> str:
        """Put a file (a path, or a binary stream read once) at inputs/<job_id>/<name>."""
        key = contract.input_key(job_id, safe_name(name))
        if isinstance(source, Path):
            aws_call(self.s3.upload_file, Filename=str(source), Bucket=self.stack.bucket,
                     Key=key, Config=SINGLE_PUT)
        else:
            aws_call(self.s3.upload_fileobj, Fileobj=source, Bucket=self.stack.bucket, Key=key,
                     Config=SINGLE_PUT)
        return key

    def open_output(self, key: str) -> Any:
        """A streaming body of an output object (one GET)."""
        return aws_call(self.s3.get_object, Bucket=self.stack.bucket, Key=key)["Body"]

    def download_output(self, key: str, destination: Path) -> None:
        """Stream the object to `destination`; a failed download leaves no partial file.

        One GET (download_file would send a HeadObject first).
        """
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        body = self.open_output(key)
        try:
            with open(partial, "wb") as file:
                shutil.copyfileobj(body, file, length=1024 * 1024)
            partial.replace(destination)
        except BotoCoreError as exc:
            raise AwsUnavailable(f"download of {key} failed: {exc}") from None
        finally:
            partial.unlink(missing_ok=True)
