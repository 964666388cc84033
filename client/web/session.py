"""This server's jobs, and the one thread that takes their results from the reply queue.

The server is one long-running client: one reply queue for its whole life, results
dispatched to jobs by job id, the queue deleted by close(). A job keeps running
whether or not a browser tab is open; its state lives here, not in the page.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

from worker_src import wire

from .. import api, lifecycle
from . import backend, histogram
from . import lifecycle as web_lifecycle
from .errors import bad_input, not_found

log = logging.getLogger(__name__)

# A job without a reply after this long may have its result in S3 (e.g. it dead-lettered);
# it is looked for then, and again each time the job's age has doubled.
STORED_RESULT_AFTER_SECONDS = 60.0
STORED_RESULT_CHECKS_PER_MINUTE = 50
# queued -> running (the worker's word after a second) -> done / failed / cancelled
QUEUED, RUNNING, DONE = lifecycle.QUEUED, lifecycle.RUNNING, lifecycle.DONE
FAILED, CANCELLED = lifecycle.FAILED, lifecycle.CANCELLED
FINISHED_STATES = (DONE, FAILED, CANCELLED)


@dataclass
class WebJob:
    job_id: str
    kind: str
    submitted_at: float
    name: str | None = None  # the uploaded file's name, as the user gave it
    input_key: str | None = None
    state: str = QUEUED
    result: wire.Result | None = None
    finished_at: float | None = None
    histogram: dict[str, Any] | None = None
    next_stored_check: float = 0.0
    running: Any = None  # the worker's latest running word (wire_lifecycle.Running)
    cancel_requested: bool = False

    def __post_init__(self) -> None:
        self.next_stored_check = self.submitted_at + STORED_RESULT_AFTER_SECONDS

    def view(self) -> dict[str, Any]:
        """The job as GET /api/jobs/{id} answers it."""
        result = self.result
        view: dict[str, Any] = {
            "job_id": self.job_id, "kind": self.kind, "name": self.name,
            "state": self.state, "submitted_at": self.submitted_at,
            "finished_at": self.finished_at,
            "result": result.value if result is not None and result.ok else None,
            "error": ({"code": result.error_code, "message": result.error_message}
                      if result is not None and not result.ok else None),
            "timing": result.timing if result is not None else None,
            "running": web_lifecycle.running_view(self.running),
            "cancel_requested": self.cancel_requested,
        }
        if self.kind == "stats" and result is not None and result.ok:
            view["text"] = backend.stats_text(result.value or {})
        if self.input_key is not None:
            view["input_url"] = f"/api/jobs/{self.job_id}/input"
            view["output_url"] = None
            view["histogram"] = self.histogram
            if self.output_key is not None:
                view["output_url"] = f"/api/jobs/{self.job_id}/output"
                view["download_name"] = backend.download_name(
                    self.kind, self.name or "image", self.output_key)
        return view

    @property
    def output_key(self) -> str | None:
        if self.result is None or not self.result.ok:
            return None
        return (self.result.value or {}).get("output_key")


class WebSession:
    """The jobs this server submitted, their results, and the reply-queue dispatcher."""

    def __init__(self, client: api.Client, *, receive_wait_seconds: int = 20) -> None:
        self.client = client
        self.receive_wait_seconds = receive_wait_seconds
        self._jobs: dict[str, WebJob] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._queue_url: str | None = None
        self._dispatcher: threading.Thread | None = None
        self._last_stored_check = time.monotonic()
        # Fallback histograms (Pillow) for workers that do not send them yet.
        self._histograms = ThreadPoolExecutor(max_workers=2, thread_name_prefix="histogram")

    def start(self) -> None:
        self._queue_url = backend.reply_queue(self.client)
        self._dispatcher = threading.Thread(target=self._dispatch, name="reply-dispatcher",
                                            daemon=True)
        self._dispatcher.start()

    def close(self) -> None:
        """Stop the dispatcher, then delete the reply queue."""
        self._stopping.set()
        self._histograms.shutdown(wait=False, cancel_futures=True)
        if self._dispatcher is not None and self._queue_url is not None:
            try:  # end the open long poll now rather than in up to 20 s
                backend.wake(self.client, self._queue_url)
            except api.ClientFailure:
                pass
            self._dispatcher.join(timeout=5)
        backend.close(self.client)

    # ---- submitting ---------------------------------------------------------------

    def submit_stats(self, numbers: list[int]) -> str:
        job = WebJob(backend.new_job_id(), "stats", time.time())
        self._register(job)
        self._send(job, {"numbers": numbers})
        return job.job_id

    def submit_image(self, kind_name: str, name: str, file: BinaryIO,
                     texts: dict[str, str], extra_files: dict[str, tuple[str, BinaryIO]]) -> str:
        """Check the arguments, upload the file(s) to inputs/<job>/, submit the job."""
        kinds = backend.image_kinds()
        if kind_name not in kinds:
            raise bad_input(f"unknown image operation {kind_name!r}; known: "
                            f"{', '.join(sorted(kinds)) or 'none'}")
        kind = kinds[kind_name]
        files = {kind.main_input: (name, file), **extra_files}
        unknown = sorted(set(files) - set(kind.file_args()))
        if unknown:
            raise bad_input(f"{kind.name} takes no file {unknown[0]!r}; its files: "
                            f"{', '.join(kind.file_args())}")
        args = backend.check_image_args(kind, texts, files)  # before any upload
        job_id = backend.new_job_id()
        for arg, (file_name, stream) in files.items():
            upload_as = file_name if arg == kind.main_input else f"{arg}-{file_name}"
            args[arg] = backend.upload(self.client, job_id, upload_as, stream)
        job = WebJob(job_id, kind.name, time.time(), name=name, input_key=args[kind.main_input])
        self._register(job)
        self._send(job, args)
        return job_id

    def _register(self, job: WebJob) -> None:
        with self._lock:
            self._jobs[job.job_id] = job  # before sending: a reply may come at once

    def _send(self, job: WebJob, args: dict[str, Any]) -> None:
        try:
            backend.submit(self.client, job.job_id, job.kind, args)
        except BaseException:
            with self._lock:
                self._jobs.pop(job.job_id, None)
            raise

    # ---- reading ----------------------------------------------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [job.view() for job in self._jobs.values()]

    def job(self, job_id: str) -> WebJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise not_found(f"no job {job_id!r} in this session")
        return job

    # ---- results ----------------------------------------------------------------------

    def _dispatch(self) -> None:
        while not self._stopping.is_set():
            try:
                results = backend.receive_results(self.client, self.receive_wait_seconds)
                for result in results:
                    self.deliver(result)
                self._take_running_words()
                self._check_stored_results()
            except api.ClientFailure as exc:
                if self._stopping.is_set():
                    return
                log.warning("web: receiving results failed (%s); retrying", exc)
                self._stopping.wait(2)

    def deliver(self, result: wire.Result) -> None:
        """Record a job's result (a duplicate or another run's result is dropped)."""
        with self._lock:
            job = self._jobs.get(result.job_id)
            if job is None or job.result is not None:
                return
            job.result = result
            job.finished_at = time.time()
            job.state = web_lifecycle.result_state(result)
            needs_histogram = job.output_key is not None
        if needs_histogram:
            given = (result.value or {}).get("histogram")
            if given is not None:
                job.histogram = {**given, "source": "worker"}
            else:
                self._histograms.submit(self._fallback_histogram, job)

    def _take_running_words(self) -> None:
        with self._lock:
            for job_id, word in list(self.client.running.items()):
                job = self._jobs.get(job_id)
                if job is not None and job.result is None:
                    job.running, job.state = word, RUNNING

    def cancel(self, job_ids: list[str] | None) -> dict[str, Any]:
        """Cancel jobs of this session (None: every unfinished one); their results follow."""
        with self._lock:
            jobs = list(self._jobs.values()) if job_ids is None else \
                [self._jobs[job_id] for job_id in job_ids if job_id in self._jobs]
            finished = [job.job_id for job in jobs if job.state in FINISHED_STATES]
            asked = [job for job in jobs if job.state not in FINISHED_STATES]
            for job in asked:
                job.cancel_requested = True
        if asked:
            lifecycle.request_cancel(self.client, [job.job_id for job in asked])
        return {"requested": [job.job_id for job in asked], "finished": finished}

    def _fallback_histogram(self, job: WebJob) -> None:
        try:
            before = histogram.histogram(backend.read_object(self.client, job.input_key or ""))
            after = histogram.histogram(backend.read_object(self.client, job.output_key or ""))
        except api.ClientFailure as exc:
            log.warning("web: no histogram for job %s: %s", job.job_id, exc)
            return
        if before is not None and after is not None:
            job.histogram = {"input": before, "output": after, "source": "web server (Pillow)"}

    def _check_stored_results(self) -> None:
        """Jobs long without a reply: take a result stored in S3 (e.g. dead-lettered)."""
        if time.monotonic() - self._last_stored_check < 60:
            return
        self._last_stored_check = time.monotonic()
        now = time.time()
        with self._lock:
            late = [j for j in self._jobs.values()
                    if j.result is None and j.next_stored_check <= now]
        for job in sorted(late, key=lambda j: j.next_stored_check)[
                :STORED_RESULT_CHECKS_PER_MINUTE]:
            job.next_stored_check = now + (now - job.submitted_at)
            result = backend.stored_result(self.client, job.job_id)
            if result is not None:
                self.deliver(result)
