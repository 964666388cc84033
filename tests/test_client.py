"""The client library and CLI against in-process moto, with a worker thread serving the jobs."""

import json
import threading
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from client import api, cli, cli_jobs
from client.status import stack_status
from tests.moto_stack import deploy, serving_worker
from worker_src import wire

STACK = "wqw-unit"



@pytest.fixture
def stack():
    with mock_aws():
        yield deploy(STACK, outputs={"LogGroupName": "wqw-unit-logs"})


@pytest.fixture
def worker(stack):
    with serving_worker(stack) as worker:
        yield worker


def reply_queues(stack):
    return boto3.client("sqs").list_queues(QueueNamePrefix=stack.reply_queue_prefix).get(
        "QueueUrls", [])


def test_find_stack_reads_the_outputs(stack):
    assert stack.request_queue_url.endswith(f"{STACK}-requests")
    assert stack.bucket == f"{STACK}-bucket"


def test_a_missing_stack_is_reported_as_such(stack):
    with pytest.raises(api.StackNotFound, match="no stack named 'nope'"):
        api.find_stack(boto3.Session(), "nope")


def test_submit_and_wait_through_a_worker(stack, worker):
    with api.Client(boto3.Session(), stack) as client:
        ids = client.submit([("stats", {"numbers": [n, n + 1]}) for n in range(25)])
        results = {r.job_id: r for r in client.wait(ids, timeout=30)}
        assert client.reply_queue_url.split("/")[-1].startswith(stack.reply_queue_prefix)
    assert [results[i].value["sum"] for i in ids] == [2 * n + 1 for n in range(25)]
    assert reply_queues(stack) == []  # deleted on close


def test_results_of_other_pending_jobs_are_kept_for_a_later_wait(stack, worker):
    with api.Client(boto3.Session(), stack) as client:
        first, second = client.submit([("stats", {"numbers": [1]}), ("stats", {"numbers": [2]})])
        [one] = client.wait([second], timeout=30)
        [two] = client.wait([first], timeout=30)
    assert (one.job_id, one.value["max"], two.job_id, two.value["max"]) == (second, 2, first, 1)


def test_a_duplicate_result_is_reported_once(stack):
    with api.Client(boto3.Session(), stack) as client:
        [job_id] = client.submit([("stats", {"numbers": [1]})])
        body = wire.encode_result(wire.ok_result(job_id, {"count": 1}))
        for _ in range(2):
            client.sqs.send_message(QueueUrl=client.reply_queue_url, MessageBody=body)
        assert len(list(client.wait([job_id], timeout=5))) == 1
        with pytest.raises(api.UsageError):
            list(client.wait([job_id], timeout=1))


def test_arguments_too_large_for_a_message_travel_through_s3(stack, worker):
    numbers = list(range(-10**14, -10**14 + 120_000))  # about 1.9 MB of JSON
    with api.Client(boto3.Session(), stack) as client:
        [job_id] = client.submit([("stats", {"numbers": numbers})])
        [result] = client.wait([job_id], timeout=60)
        stored = client.s3.get_object(Bucket=stack.bucket, Key=f"inputs/{job_id}/args.json")
    assert json.loads(stored["Body"].read())["numbers"][:2] == numbers[:2]
    assert result.value["count"] == len(numbers) and result.value["min"] == numbers[0]


def test_wait_gives_up_naming_the_missing_jobs(stack):
    with api.Client(boto3.Session(), stack) as client:
        [job_id] = client.submit([("stats", {"numbers": [1]})])
        with pytest.raises(api.WaitTimeout) as timeout:
            list(client.wait([job_id], timeout=1))
    assert timeout.value.missing == [job_id]


def test_stale_reply_queues_are_removed_but_not_the_own_one(stack):
    sqs = boto3.client("sqs")
    stale = sqs.create_queue(QueueName=f"{stack.reply_queue_prefix}crashedrun")["QueueUrl"]
    with api.Client(boto3.Session(), stack) as client:
        client.submit([("stats", {"numbers": [1]})])
        assert stale in reply_queues(stack)  # younger than a day: may still be in use
        assert client.remove_stale_reply_queues(older_than_seconds=0) == [stale]
        assert reply_queues(stack) == [client.reply_queue_url]


def run_cli(capsys, *argv):
    code = cli.main([*argv, "--stack", STACK])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_stats_prints_one_json_document(stack, worker, capsys):
    code, out, err = run_cli(capsys, "stats", "5", "3", "9", "1", "--json")
    document = json.loads(out)
    assert code == 0 and err == ""
    assert {k: document[k] for k in ("count", "min", "max", "sum", "average", "median")} == {
        "count": 4, "min": 1, "max": 9, "sum": 18, "average": 4.5, "median": 4}


def test_cli_stats_reads_a_file(stack, worker, capsys, tmp_path):
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("1, 2\n3\n\n-4\n")
    code, out, _ = run_cli(capsys, "stats", "--file", str(numbers))
    assert code == 0 and "sum      2" in out


def test_cli_rejects_a_bad_token_before_sending_anything(capsys):
    code, out, err = run_cli(capsys, "stats", "1", "x", "3")
    assert (code, out) == (2, "")
    assert err.strip() == "error: 'x' is not an integer (item 2)"


def test_cli_missing_stack_exits_3(stack, capsys):
    code = cli.main(["stats", "1", "--stack", "nope"])
    assert code == 3 and "no stack named 'nope'" in capsys.readouterr().err


def test_cli_timeout_exits_4_and_removes_its_reply_queue(stack, capsys):
    code, _, err = run_cli(capsys, "stats", "1", "--timeout", "1")
    assert code == 4 and "timed out" in err
    assert reply_queues(stack) == []


def test_cli_no_wait_then_result(stack, worker, capsys):
    code, out, _ = run_cli(capsys, "stats", "2", "4", "--no-wait", "--json")
    [job_id] = json.loads(out)["job_ids"]
    assert code == 0
    for _ in range(50):
        code, out, err = run_cli(capsys, "result", job_id, "--json")
        if code == 0:
            break
        threading.Event().wait(0.1)
    assert json.loads(out)["average"] == 3


def test_cli_result_of_an_unknown_job_exits_1(stack, capsys):
    job_id = wire.new_job_id()
    code, out, _ = run_cli(capsys, "result", job_id)
    assert code == 1 and f"job {job_id}: queued" in out and "never submitted" in out


def test_cli_status_reports_queue_depths(stack, capsys):
    boto3.client("sqs").send_message(QueueUrl=stack.request_queue_url, MessageBody="{}")
    code, out, _ = run_cli(capsys, "status", "--json")
    assert code == 0 and json.loads(out)["waiting"] == 1


def test_a_job_whose_reply_never_comes_gets_its_result_from_s3(stack):
    with api.Client(boto3.Session(), stack) as client:
        [job_id] = client.submit([("stats", {"numbers": [1]})])
        stand_in = wire.error_result(job_id, wire.INTERNAL, "every worker died holding it")
        client.s3.put_object(Bucket=stack.bucket, Key=f"results/{job_id}.json",
                             Body=wire.encode_result(stand_in))
        [result] = client.wait([job_id], timeout=1)
    assert result == stand_in


def test_cli_logs_prints_the_recent_worker_lines(stack, capsys):
    logs = boto3.client("logs")
    logs.create_log_group(logGroupName="wqw-unit-logs")
    logs.create_log_stream(logGroupName="wqw-unit-logs", logStreamName="i-123/worker")
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName="wqw-unit-logs", logStreamName="i-123/worker",
                        logEvents=[{"timestamp": now - 3_600_000, "message": "too old"},
                                   {"timestamp": now - 1000, "message": "job 1 ok"},
                                   {"timestamp": now, "message": "job 2 ok\n"}])
    code, out, _ = run_cli(capsys, "logs", "--since", "10", "--json")
    document = json.loads(out)
    assert code == 0 and document["log_group"] == "wqw-unit-logs"
    assert [line["message"] for line in document["lines"]] == ["job 1 ok", "job 2 ok"]
    assert {line["stream"] for line in document["lines"]} == {"i-123/worker"}
    code, out, _ = run_cli(capsys, "logs", "--limit", "1")
    assert code == 0 and out.strip().endswith("i-123/worker  job 2 ok")


def test_status_lists_the_workers_of_the_group(stack):
    autoscaling = boto3.client("autoscaling")
    image = boto3.client("ec2").describe_images()["Images"][0]["ImageId"]
    autoscaling.create_launch_configuration(LaunchConfigurationName="lc", ImageId=image,
                                            InstanceType="t2.micro")
    autoscaling.create_auto_scaling_group(AutoScalingGroupName=f"{STACK}-workers",
                                          LaunchConfigurationName="lc", MinSize=2, MaxSize=2,
                                          AvailabilityZones=["us-east-1a"])
    with_group = api.StackInfo(**{**stack.__dict__, "worker_group": f"{STACK}-workers"})
    with api.Client(boto3.Session(), with_group) as client:  # real AWS endpoints, mocked
        status = stack_status(client)
    assert [w["state"] for w in status["workers"]] == ["InService", "InService"]


def test_cli_without_a_region_says_so(capsys, monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    assert cli.main(["stats", "1"]) == 5
    assert capsys.readouterr().err == "error: no AWS region: set AWS_REGION or pass --region\n"


def test_aws_region_alone_is_enough(stack, monkeypatch, capsys):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert run_cli(capsys, "status")[0] == 0


def test_files_travel_in_one_request_each_way(stack, tmp_path):
    source = tmp_path / "big photo.jpg"
    source.write_bytes(bytes(range(256)) * 40_000)  # 10 MB: above boto3's multipart threshold
    calls = []
    with api.Client(boto3.Session(), stack) as client:
        client.s3.meta.events.register(
            "before-call.s3.*", lambda model, **_: calls.append(model.name))
        key = client.upload(wire.new_job_id(), source.name, source)
        destination = tmp_path / "out" / "copy.jpg"
        client.download_output(key, destination)
    assert key.endswith("/big_photo.jpg")
    assert calls == ["PutObject", "GetObject"]
    assert destination.read_bytes() == source.read_bytes()
    assert [p.name for p in destination.parent.iterdir()] == ["copy.jpg"]  # no .part left


def test_equalize_expands_wildcards_the_shell_left_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    for name in ("b.jpg", "a.jpg", "notes.txt"):
        (tmp_path / "photos" / name).write_bytes(b"x")
    assert cli_jobs.expand_files(["photos/*.jpg"]) == [Path("photos/a.jpg"), Path("photos/b.jpg")]
    assert cli_jobs.expand_files(["photos/notes.txt"]) == [Path("photos/notes.txt")]
    with pytest.raises(api.UsageError, match=r"photos/\*.png: no files match"):
        cli_jobs.expand_files(["photos/*.png"])
    with pytest.raises(api.UsageError, match="missing.jpg: no such file"):
        cli_jobs.expand_files(["missing.jpg"])
