"""The benchmarks (bench/request_cost.py, latency, throughput, image, stats) keep working.

Fast tests check the arithmetic and the request hooks; the slow ones run each script's core on
a tiny input against one local stack (moto on 127.0.0.1, real worker processes).
"""

import io
import random
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from bench import latency as bench_latency
from bench import request_cost
from bench import throughput as bench_throughput
from bench._common import (
    Charges,
    Request,
    RequestRecorder,
    dollars_per_million_jobs,
    local_stack,
    markdown_table,
    percentile,
    run_in_process,
)


def request(service, operation, payload_bytes=100, started=0.0, messages=0):
    return Request(started, started + 0.01, service, operation, payload_bytes, messages)


# ---- fast: arithmetic, tables, hooks ------------------------------------------------------

def test_charges_follow_the_price_list():
    requests = [request("sqs", "SendMessageBatch", payload_bytes=70 * 1024)]  # 2 chunks of 64 KiB
    requests += [request("sqs", "ReceiveMessage") for _ in range(5)]
    requests += [request("s3", "PutObject"), request("s3", "PutObject"),
                 request("s3", "GetObject"), request("s3", "HeadObject"),
                 request("s3", "DeleteObject")]
    charges = Charges.of(requests)
    assert (charges.sqs_requests, charges.sqs_billed, charges.s3_put, charges.s3_get) == (
        6, 7, 2, 2)
    # 7 x $0.40/M + 2 x $5/M + 2 x $0.40/M
    assert charges.dollars() == pytest.approx(13.6e-6)


def test_dollars_per_million_jobs():
    assert dollars_per_million_jobs(0.6) == pytest.approx(0.24)
    assert dollars_per_million_jobs(2.22) == pytest.approx(0.888)
    assert dollars_per_million_jobs(0.6, 2, 3) == pytest.approx(0.24 + 10 + 1.2)


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    random.Random(1).shuffle(values)
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.95) == 95
    assert percentile([7.0], 0.95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_markdown_table_aligns_columns():
    lines = markdown_table(["a", "long header"], [[1, 2], ["wide cell", 3]]).splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("| ---------")
    assert len({len(line) for line in lines}) == 1


def test_idle_rate_comes_from_the_interval_between_polls():
    receives = [request("sqs", "ReceiveMessage", started=t) for t in (100.0, 120.0, 140.0)]
    assert request_cost.Idle(65, receives).per_minute() == pytest.approx(3.0)
    assert request_cost.Idle(10, receives[:1]).per_minute() is None


def test_recorder_sees_every_request_and_the_messages_received():
    recorder = RequestRecorder()
    with mock_aws():
        sqs = recorder.attach(boto3.client("sqs", region_name="us-east-1"))
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": "x"} for i in range(3)])
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    assert [r.operation for r in recorder.requests] == [
        "CreateQueue", "SendMessageBatch", "ReceiveMessage"]
    assert {r.service for r in recorder.requests} == {"sqs"}
    assert recorder.requests[-1].messages == 3


def test_a_batch_above_the_target_is_reported_missed():
    jobs = 100
    client = [request("sqs", "SendMessageBatch") for _ in range(10)]
    worker = [request("sqs", "ReceiveMessage") for _ in range(140)]  # 1.5 SQS requests per job
    runs = [request_cost.Run("1 job", 1, client[:1], worker[:2]),
            request_cost.Run("100 jobs", jobs, client, worker)]
    idle = request_cost.Idle(65, [request("sqs", "ReceiveMessage", started=t)
                                    for t in (0.0, 10.0, 20.0)])  # 6 per minute
    lines = request_cost.targets(request_cost.Report(runs, idle, 100))
    assert "1.50" in lines[0] and "MISSED" in lines[0]
    assert "MISSED" in lines[1]  # 1.5 x $0.40 = $0.60 per million: over $0.50
    assert "MISSED" in lines[2]


def test_the_lifecycle_targets_price_a_cancel_in_flight():
    client = [request("sqs", "SendMessageBatch") for _ in range(10)]
    worker = [request("sqs", "ReceiveMessage") for _ in range(60)]
    cancel = [request("s3", "PutObject"), request("sqs", "SendMessage")]
    plain = request_cost.Run("100 jobs", 100, client, worker)
    cancelled = request_cost.Run("100 jobs, a cancel", 100, client + cancel,
                                 worker + [request("sqs", "SendMessageBatch")] * 3)
    idle = request_cost.Idle(65, [])
    lines = request_cost.lifecycle_targets(
        request_cost.Report([plain, plain, cancelled], idle, 100, cancelled=cancelled), plain)
    assert "0.70" in lines[0] and "met" in lines[0]
    assert "+5 requests" in lines[1] and "+0.05 per job" in lines[1]
    heavy = request_cost.Run("100 jobs", 100, client, worker + [request("s3", "HeadObject")] * 10)
    assert "MISSED" in request_cost.lifecycle_targets(
        request_cost.Report([heavy], idle, 100), heavy)[0]


# ---- slow: each script's core on a tiny input ---------------------------------------------------

@pytest.fixture(scope="module")
def stack():
    # A short visibility timeout: a worker stopped during its long poll leaves that poll open
    # in the emulator, which may hide the next test's first jobs for this long.
    with local_stack("bench-smoke", context={"visibility_timeout": "5"}) as running:
        yield running


@pytest.mark.slow
def test_requests_counts_the_client_and_the_worker(stack):
    report = request_cost.measure(stack, quick=True, idle_seconds=2)
    one, batch, cancelled, images = report.runs
    assert (one.jobs, batch.jobs, cancelled.jobs, images.jobs) == (1, 10, 10, 2)
    assert [r.operation for r in cancelled.client if r.service == "s3"] == ["PutObject"]
    assert report.cancelled is cancelled
    client_sends = [r for r in batch.client if r.operation == "SendMessageBatch"]
    assert len(client_sends) == 1  # 10 jobs, one batch
    worker_receives = [r for r in batch.worker if r.operation == "ReceiveMessage"]
    assert sum(r.messages for r in worker_receives) >= batch.jobs  # seen across processes
    assert batch.per_job()["sqs"] >= request_cost.FLOOR_SQS_PER_JOB
    image_charges = images.charges
    assert image_charges.s3_put == 2 * images.jobs  # upload + the worker's output
    assert image_charges.s3_get >= 2 * images.jobs  # the worker's read + the download
    assert len(report.idle.receives) <= 1  # an idle worker long-polls
    table = request_cost.render(report)
    assert "quoted" in table and "### Targets" in table


@pytest.mark.slow
def test_latency_times_jobs_and_the_floor(stack):
    latency = bench_latency.measure(stack, jobs=5, warmup=1)
    assert len(latency.jobs) == len(latency.floor) == len(latency.pipelined) == 5
    assert all(seconds > 0 for seconds in latency.jobs + latency.floor + latency.pipelined)
    assert all(len(values) == 5 for values in latency.floor_calls.values())
    assert "p50 round trip / p50 floor" in bench_latency.render(latency)


@pytest.mark.slow
def test_throughput_runs_the_library_and_the_cli(stack):
    sizes = bench_throughput.Sizes(stats_jobs=20, image_jobs=2, cli_images=2, raw_seconds=0.5)
    [phase] = bench_throughput.measure(stack, sizes, max_workers=1)
    assert (phase.stats.jobs, phase.images.jobs, phase.cli.jobs) == (20, 2, 2)
    assert phase.raw.jobs > 0 and phase.stats.rate > 0
    table = bench_throughput.render([phase])
    assert "python -m client equalize" in table and "### Targets" in table


# ---- the image and stats benchmarks (bench/image.py, bench/stats.py) ----------------


@pytest.mark.filterwarnings("ignore:This might be a color image")
def test_bench_image_measures_each_method_on_a_tiny_image(tmp_path: Path) -> None:
    from bench.image import Case, make_image, max_difference, measure_once, run_method

    path = make_image(tmp_path / "tiny.jpg", Case(0.01, "RGB", "JPEG"))
    assert Image.open(path).size == (115, 86)
    for method in ("a", "c"):
        assert run_method(method, path) > 0
    seconds, peak_bytes = measure_once("b", path)  # in a fresh process
    assert 0 < seconds < 60 and peak_bytes > 10_000_000
    assert max_difference(path) == 0


def test_bench_image_rows_of_every_kind_on_a_tiny_image(tmp_path: Path) -> None:
    from bench.image import KIND_ARGS, Case, make_image, max_difference, run_method

    case = Case(0.01, "RGB", "JPEG")
    path = make_image(tmp_path / "tiny.jpg", case)
    reference = make_image(tmp_path / "reference.jpg", case, seed=1)
    for kind in KIND_ARGS:
        ref = reference if kind == "match" else None
        assert max_difference(path, kind, ref) == 0, kind
        for method in ("a", "b", "c"):
            assert run_method(method, path, kind, ref) > 0


def test_bench_image_steps_measures_each_method_on_a_small_photo(tmp_path: Path) -> None:
    from bench import image_steps

    path = image_steps.make_photo(tmp_path / "photo.jpg", 0.5)
    warm_up = image_steps.make_photo(tmp_path / "warm-up.jpg", 0.01)
    methods = ["ours", "exact", "pillow", "pipeline", *(f"alone-{n}" for n, _ in
                                                         image_steps.ALONE)]
    if image_steps.have_pyvips():
        methods.append("libvips")
    for method in methods:
        assert 0 < image_steps.work(method, path, warm_up=warm_up) < 60, method
    seconds, peak_mb = image_steps.measure("ours", path, runs=1)  # a fresh process
    assert 0 < seconds < 60 and peak_mb > 10
    output = run_in_process("pipeline", image_steps.pipeline_args(), {"image": path})
    assert output.content_type == "image/webp"
    # The photo is 816x612 with EXIF orientation 6: upright, it fits 1600 as 612x816.
    assert Image.open(io.BytesIO(output.data)).size == (612, 816)


def test_the_benchmark_measures_the_same_statistics(tmp_path) -> None:
    from bench import stats as bench_stats
    from tests.test_jobs_stats import assert_exact
    from worker_src import wire

    for shape in ("int64", "digits"):
        path = bench_stats.write_case(tmp_path / f"{shape}.txt", shape, 300)
        worker = bench_stats.child_compute("worker", path, 64)
        reference = bench_stats.child_compute("statistics", path, 0)
        assert worker["value"] == reference["value"] and worker["passes"] == 1
        numbers = [int(line) for line in path.read_text().split()]
        assert_exact(wire.loads(worker["value"]), numbers)


def test_bench_workhorse_times_both_ways_on_a_tiny_image(tmp_path: Path) -> None:
    from bench.image import Case, make_image
    from bench.workhorse import WAYS, run_once

    path = make_image(tmp_path / "tiny.jpg", Case(0.01, "RGB", "JPEG"))
    for way in WAYS:
        assert 0 < run_once(way, path) < 60, way
