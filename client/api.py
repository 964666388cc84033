"""The client library: find a deployed stack, submit jobs of any kind, wait for their results.

    with Client.connect("web-queue-worker") as client:
        [job_id] = client.submit([("stats", {"numbers": [3, 1, 2]})])
        for result in client.wait([job_id], timeout=60):
            print(result.value)

        job_ids = client.submit_files("gamma", [Path("photo.jpg")], {"gamma": 0.5})

Each Client creates its own reply queue (`<stack>_reply_<random>`, tagged as the
stack's) on first submit and deletes it on close; results are matched to jobs by job id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from worker_src import aws, contract, wire
from worker_src.capacity import raise_capacity

from . import bucket, lifecycle, replies
from .errors import (  # noqa: F401 - the library's errors, importable from here
    AwsUnavailable,
    ClientFailure,
    StackNotFound,
    UsageError,
    WaitTimeout,
    aws_call,
)
from .jobs import PreparedJob, find_kind, prepare
from .stack import StackInfo, find_stack  # noqa: F401 - the library's, importable from here

DEFAULT_STACK = contract.DEFAULT_STACK_NAME
# Jobs whose reply queue was deleted: their results are looked for in S3 after this
# long, then after twice as long each time none came, up to ORPHAN_CHECK_MAX_SECONDS (a
# reply that reached the queue before it was deleted never reaches S3).
ORPHAN_CHECK_SECONDS = 5.0
ORPHAN_CHECK_MAX_SECONDS = 300.0
# Files uploaded at once by submit_files when the caller gives no pool of its own.
UPLOADS_AT_ONCE = 8


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
        self._orphans: set[str] = set()  # pending, their reply queue deleted: results in S3
        self._orphans_checked_at = 0.0
        self._orphan_check_seconds = ORPHAN_CHECK_SECONDS
        self._polled_tag_at = 0.0
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
        reply_to = self.reply_queue() if wait else None
        ids = iter(job_ids) if job_ids is not None else None
        bodies: list[tuple[str, str]] = []
        for kind, args in jobs:
            job_id = next(ids) if ids is not None else wire.new_job_id()
            job = wire.Job(job_id=job_id, kind=kind, args=args, reply_to=reply_to,
                           submitted_at=time.time())
            body = wire.encode_job(job)
            if len(body.encode()) > wire.MAX_MESSAGE_BYTES:
                body = bucket.job_with_args_in_s3(self.s3, self.stack.bucket, job)
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
                     on_upload: Callable[[Path], None] | None = None,
                     pool: Executor | None = None) -> list[str]:
        """One job of `kind_name` per input file, prepared, uploaded and sent; their job ids.

        The uploads run on `pool`, or on a pool of UPLOADS_AT_ONCE threads of this call's own.

        `file_args` are the kind's other file arguments (e.g. match's reference),
        uploaded once per job since every key carries its job id.
        """
        kind = find_kind(kind_name)
        if kind.main_input is None:
            raise UsageError(f"{kind_name} takes no input file")
        prepared, files = [], []
        for path in inputs:
            given = {kind.main_input: path, **file_args}
            prepared.append(prepare(kind_name, args, {n: p.name for n, p in given.items()}))
            files.append(given)
        if pool is not None:
            return self.submit_prepared(prepared, files, wait=wait, on_upload=on_upload,
                                        pool=pool)
        with ThreadPoolExecutor(max_workers=UPLOADS_AT_ONCE) as own:
            return self.submit_prepared(prepared, files, wait=wait, on_upload=on_upload,
                                        pool=own)

    def submit_prepared(self, prepared: Sequence[PreparedJob],
                        files: Sequence[Mapping[str, Path | BinaryIO]], *, wait: bool = True,
                        on_upload: Callable[[Path], None] | None = None,
                        pool: Executor | None = None,
                        job_ids: Sequence[str] | None = None) -> list[str]:
        """Upload each prepared job's files (on `pool`, if given), then send the jobs.

        `files[i]` holds the file (a path, or a stream read once) of each of
        `prepared[i]`'s upload names. `on_upload(main input)` is called as each job's
        files are up. `job_ids`: the jobs' ids if the caller chose them (else new ones).
        """
        job_ids = list(job_ids) if job_ids is not None else [wire.new_job_id() for _ in prepared]

        def upload(job_id: str, job: PreparedJob, given: Mapping[str, Path | BinaryIO]
                   ) -> dict[str, Any]:
            job_args = dict(job.args)
            for name, upload_name in job.upload_names.items():
                job_args[name] = self.upload(job_id, upload_name, given[name])
            if on_upload is not None and job.kind.main_input in given:
                on_upload(given[job.kind.main_input])  # type: ignore[arg-type]
            return job_args

        mapped = (pool.map if pool is not None else map)(upload, job_ids, prepared, files)
        all_args = list(mapped)
        return self.submit([(job.kind.name, a) for job, a in zip(prepared, all_args,
                                                                   strict=True)],
                           wait=wait, job_ids=job_ids)

    def _send_batches(self, bodies: list[tuple[str, str]]) -> None:
        sizes = [len(body.encode()) for _, body in bodies]
        for indexes in aws.sqs_batches(sizes):
            self._send_batch([bodies[i] for i in indexes])

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

    def reply_queue(self) -> str:
        """This client's reply queue, created on first use (also again after it was deleted)."""
        with self._lock:
            if self.reply_queue_url is None:
                self.remove_stale_reply_queues()
                self.reply_queue_url = replies.create(self.sqs, self.stack)
                self._polled_tag_at = time.time()
            return self.reply_queue_url

    def remove_stale_reply_queues(
            self, older_than_seconds: float = replies.STALE_SECONDS) -> list[str]:
        """Delete this stack's reply queues that no client has polled for this long
        (replies.remove_stale: never a live client's, never one not tagged as the stack's)."""
        return replies.remove_stale(self.sqs, self.stack, older_than_seconds,
                                    keep=self.reply_queue_url)

    def _keep_reply_queue_alive(self, queue_url: str) -> None:
        """Refresh the last-poll tag, at most every POLLED_TAG_REFRESH_SECONDS."""
        now = time.time()
        if now - self._polled_tag_at >= replies.POLLED_TAG_REFRESH_SECONDS:
            replies.mark_polled(self.sqs, queue_url, now)
            self._polled_tag_at = now

    def _reply_queue_lost(self, queue_url: str) -> None:
        """The reply queue was deleted under us: its pending jobs' results go to S3.

        A worker that finds a reply queue gone stores the result instead; a new queue is
        made for the jobs sent from now on.
        """
        with self._lock:
            if self.reply_queue_url == queue_url:
                self.reply_queue_url = None
            self._orphans |= self._pending
        self._orphans_checked_at = 0.0
        self._orphan_check_seconds = ORPHAN_CHECK_SECONDS

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

        Each job's result is returned once; duplicates and strays are dropped. If the queue
        was deleted (e.g. by another machine's cleanup), the results of the jobs that
        replied to it are taken from S3 and a new queue serves the jobs sent after. Once
        the client is closed there is no reply queue to poll: nothing is returned.
        """
        if self.closed:
            return []
        queue_url = self.reply_queue()
        if self._orphans:  # poll shorter: their results are looked for in S3 in between
            wait_seconds = min(wait_seconds, int(self._orphan_check_seconds))
        try:
            self._keep_reply_queue_alive(queue_url)
            messages = self._receive(queue_url, wait_seconds)
        except AwsUnavailable as exc:
            if not aws.queue_missing(exc):
                raise
            self._reply_queue_lost(queue_url)
            messages = []
        results = self._stored_results_of_orphans()
        words = 0
        for message in messages:
            try:
                result = wire.decode_result(message["Body"])
            except wire.WireError:
                lifecycle.take_word(self, message["Body"])  # running, cancel answers
                words += 1
                continue
            if self._take(result.job_id):
                results.append(result)
        for result in results:
            self.running.pop(result.job_id, None)
        if words and self.on_word is not None:
            self.on_word()
        return results

    def _receive(self, queue_url: str, wait_seconds: int) -> list[dict[str, Any]]:
        response = aws_call(self.sqs.receive_message, QueueUrl=queue_url,
                            MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds)
        messages = response.get("Messages", [])
        if messages:
            aws_call(self.sqs.delete_message_batch, QueueUrl=queue_url,
                     Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                              for i, m in enumerate(messages)])
        return messages

    def _take(self, job_id: str) -> bool:
        """Whether job_id was pending (it is not any more): False for a duplicate."""
        with self._lock:
            if job_id not in self._pending:
                return False
            self._pending.discard(job_id)
            self._orphans.discard(job_id)
            return True

    def _stored_results_of_orphans(self) -> list[wire.Result]:
        """Results in S3 of jobs whose reply queue is gone (looked for at growing intervals)."""
        if (not self._orphans
                or time.monotonic() - self._orphans_checked_at < self._orphan_check_seconds):
            return []
        self._orphans_checked_at = time.monotonic()
        results = []
        for job_id in sorted(self._orphans):
            try:
                result = self.fetch_result(job_id)
            except (ClientFailure, wire.WireError):
                continue  # not there yet: the job is still queued or running
            if self._take(job_id):
                results.append(result)
        if not results:
            self._orphan_check_seconds = min(2 * self._orphan_check_seconds,
                                             ORPHAN_CHECK_MAX_SECONDS)
        return results

    def fetch_result(self, job_id: str) -> wire.Result:
        """Read a job's result from S3 (jobs sent with wait=False, or undeliverable)."""
        return bucket.fetch_result(self.s3, self.stack.bucket, job_id)

    # ---- files (client/bucket.py) -------------------------------------------------

    def upload(self, job_id: str, name: str, source: Path | BinaryIO) -> str:
        """Put a file (a path, or a binary stream read once) at inputs/<job_id>/<name>."""
        return bucket.upload(self.s3, self.stack.bucket, job_id, name, source)

    def open_output(self, key: str) -> Any:
        """A streaming body of an output object (one GET)."""
        return bucket.open_output(self.s3, self.stack.bucket, key)

    def download_output(self, key: str, destination: Path, *, overwrite: bool = False) -> Path:
        """Stream the object to `destination` (or its next free numbered name); the path."""
        return bucket.download_output(self.s3, self.stack.bucket, key, destination,
                                      overwrite=overwrite)
