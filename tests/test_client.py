"""The client library and CLI against in-process moto, with a worker thread serving the jobs."""

import io
import json
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from client import api, cli, cli_jobs, names, replies
from client.status import stack_status
from tests.moto_stack import deploy, serving_worker
from worker_src import contract, wire

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


def reply_queue(name, **tags):
    return boto3.client("sqs").create_queue(QueueName=name, tags=tags)["QueueUrl"]


def test_stale_reply_queues_are_removed_but_not_the_own_one_nor_foreign_ones(stack):
    prefix, now = stack.reply_queue_prefix, time.time()
    ours = {replies.STACK_TAG: STACK}
    stale = reply_queue(f"{prefix}crashedrun", **ours, **{replies.POLLED_TAG: str(now - 2 * 86400)})
    recent = reply_queue(f"{prefix}recentrun", **ours, **{replies.POLLED_TAG: str(now - 600)})
    untagged = reply_queue(f"{prefix}imposter")  # the prefix, but not the stack's tag
    theirs = reply_queue(f"{prefix}other", **{replies.STACK_TAG: "other",
                                             replies.POLLED_TAG: str(now - 2 * 86400)})
    old_style = reply_queue(f"{STACK}-reply-orders")  # a stranger's, named like the old prefix
    with api.Client(boto3.Session(), stack) as client:
        client.submit([("stats", {"numbers": [1]})])  # creating the queue removes stale ones
        assert stale not in reply_queues(stack) and recent in reply_queues(stack)
        # Polled 10 minutes ago: a live client's, whatever age cleanup is given.
        assert client.remove_stale_reply_queues(older_than_seconds=0) == []
        assert client.remove_stale_reply_queues(older_than_seconds=0) == []
        assert sorted(reply_queues(stack)) == sorted([recent, untagged, theirs,
                                                      client.reply_queue_url])
    assert old_style in boto3.client("sqs").list_queues(QueueNamePrefix=STACK).get("QueueUrls")


def test_a_live_client_refreshes_its_last_poll_tag_and_is_never_cleaned_up(stack, monkeypatch):
    sqs = boto3.client("sqs")
    with api.Client(boto3.Session(), stack) as live, api.Client(boto3.Session(), stack) as other:
        url = live.reply_queue()
        assert sqs.list_queue_tags(QueueUrl=url)["Tags"][replies.STACK_TAG] == STACK
        sqs.tag_queue(QueueUrl=url, Tags={replies.POLLED_TAG: str(time.time() - 2 * 86400)})
        monkeypatch.setattr(replies, "POLLED_TAG_REFRESH_SECONDS", 0)
        live.receive_results(wait_seconds=0)  # a poll refreshes the tag
        polled = float(sqs.list_queue_tags(QueueUrl=url)["Tags"][replies.POLLED_TAG])
        assert time.time() - polled < 60
        assert other.remove_stale_reply_queues(older_than_seconds=0) == []


def test_a_client_whose_reply_queue_is_deleted_gets_its_results_from_s3(stack):
    with api.Client(boto3.Session(), stack) as client, ExitStack() as worker:
        first = client.submit([("stats", {"numbers": [1, 2]})])
        boto3.client("sqs").delete_queue(QueueUrl=client.reply_queue_url)
        second = client.submit([("stats", {"numbers": [3, 4]})])  # sent to the lost queue too
        worker.enter_context(serving_worker(stack))  # the worker finds the queue gone
        results = {r.job_id: r.value["sum"] for r in client.wait(first + second, timeout=60)}
        assert results == {first[0]: 3, second[0]: 7}
        third = client.submit([("stats", {"numbers": [5]})])  # a new queue serves new jobs
        [result] = client.wait(third, timeout=60)
        assert result.value["sum"] == 5 and client.reply_queue_url in reply_queues(stack)


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


def test_cli_refuses_an_integer_past_the_digit_bound_naming_it(stack, capsys, tmp_path):
    long = "3" * 100_001
    code, out, err = run_cli(capsys, "stats", "1", long)
    assert (code, out) == (2, "")
    assert err.startswith("error: '3333") and "more digits than an integer may have" in err
    assert err.rstrip().endswith("(item 2)") and len(err) < 300
    numbers = tmp_path / "numbers.txt"
    numbers.write_text(f"1 2\n{long}3\n")  # the file format counts a sign's place too
    code, out, err = run_cli(capsys, "stats", "--file", str(numbers), "--timeout", "1")
    assert (code, out) == (2, "") and "line 2, column 1" in err and "longer than" in err


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


# ---- local files: safe names, no silent overwrite, exclusive temporary files -------------------

@pytest.mark.parametrize(("name", "safe"), [
    ("photo.jpg", "photo.jpg"),
    ("..\\..\\Windows\\System32\\evil.dll", "evil.dll"),
    ("C:\\Users\\me\\photo.png", "photo.png"),
    ("C:photo.png", "C_photo.png"),
    ("../../etc/passwd", "passwd"),
    ("..", "file"),
    ("", "file"),
    ("CON", "_CON"),
    ("nul.txt", "_nul.txt"),
    ("com1.png", "_com1.png"),
    ("console.png", "console.png"),
    ("a\x1b[2J\nb.png", "a_[2J_b.png"),
    ("trailing. . ", "trailing"),
    ('what?<>|"*.png', "what______.png"),
    ("x" * 300 + ".png", "x" * 196 + ".png"),
])
def test_a_local_name_is_a_safe_base_name_on_every_os(name, safe):
    assert names.safe_base_name(name) == safe


def test_an_output_name_from_a_hostile_key_stays_in_the_output_dir(tmp_path):
    job = wire.new_job_id()
    for key in (f"outputs/{job}/..\\..\\x.png", f"outputs/{job}/a.png\\..\\..\\b",
                f"outputs/{job}/C:\\x\\y.jpg"):
        path = names.output_path(tmp_path, "..\\photo.jpg", "gamma", key)
        assert path.parent == tmp_path and path.name.startswith("photo-gamma"), key
    assert names.output_path(tmp_path, "photo.jpg", "gamma", f"outputs/{job}/photo-gamma.png") \
        == tmp_path / contract.output_name("photo", "gamma", ".png")


def test_a_download_never_replaces_a_file_unless_forced(tmp_path):
    target = tmp_path / "photo-equalized.jpg"
    target.write_bytes(b"mine")
    first = names.write_new(io.BytesIO(b"one"), target)
    second = names.write_new(io.BytesIO(b"two"), target)
    assert (first.name, second.name) == ("photo-equalized-1.jpg", "photo-equalized-2.jpg")
    assert [p.read_bytes() for p in (target, first, second)] == [b"mine", b"one", b"two"]
    assert names.write_new(io.BytesIO(b"new"), target, overwrite=True) == target
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "photo-equalized-1.jpg", "photo-equalized-2.jpg", "photo-equalized.jpg"]


def test_a_planted_part_file_or_symlink_is_never_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "photo.jpg.part").symlink_to(victim)  # the old fixed temporary name
    (out / "photo.jpg").symlink_to(victim)  # and the destination itself
    written = names.write_new(io.BytesIO(b"download"), out / "photo.jpg")
    assert written == out / "photo-1.jpg" and written.read_bytes() == b"download"
    assert victim.read_bytes() == b"precious"
    assert not [p for p in out.iterdir() if p.name.endswith(".part") and not p.is_symlink()]


class Failing(io.RawIOBase):
    def readable(self):
        return True

    def readinto(self, buffer):
        raise OSError("connection reset")


def test_a_failed_download_leaves_no_file(tmp_path):
    with pytest.raises(OSError):
        names.write_new(Failing(), tmp_path / "photo.jpg")
    assert list(tmp_path.iterdir()) == []


def test_cli_result_downloads_under_a_safe_name_and_numbers_an_existing_one(stack, capsys,
                                                                           tmp_path):
    job_id = wire.new_job_id()
    s3 = boto3.client("s3")
    key = f"outputs/{job_id}/..\\..\\evil\x1b[2J.png"
    s3.put_object(Bucket=stack.bucket, Key=key, Body=b"png")
    s3.put_object(Bucket=stack.bucket, Key=contract.result_key(job_id),
                  Body=wire.encode_result(wire.ok_result(job_id, {"output_key": key})).encode())
    for _ in range(2):
        code, out, _ = run_cli(capsys, "result", job_id, "-o", str(tmp_path))
        assert code == 0 and "\x1b" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil_[2J-1.png", "evil_[2J.png"]
    assert run_cli(capsys, "result", job_id, "-o", str(tmp_path), "--force")[0] == 0
    assert len(list(tmp_path.iterdir())) == 2


def test_cli_escapes_a_workers_error_text(stack, capsys):
    job_id = wire.new_job_id()
    result = wire.error_result(job_id, "bad_input", "bad\x1b]0;pwned\x07\nerror: forged")
    boto3.client("s3").put_object(Bucket=stack.bucket, Key=contract.result_key(job_id),
                                  Body=wire.encode_result(result).encode())
    code, _, err = run_cli(capsys, "result", job_id)
    assert code == 1 and "\x1b" not in err and "\x07" not in err
    assert err.count("\n") == 1 and "\\x1b]0;pwned\\x07\\nerror: forged" in err


@pytest.mark.parametrize(("options_last", "options_first"), [
    (["run", "gamma", "photo.jpg", "-a", "gamma=0.5", "-o", "out"],
     ["run", "gamma", "-a", "gamma=0.5", "-o", "out", "photo.jpg"]),
    (["run", "match", "a.jpg", "b.jpg", "-a", "reference=@r.jpg", "--force"],
     ["run", "match", "-a", "reference=@r.jpg", "a.jpg", "--force", "b.jpg"]),
    (["equalize", "a.jpg", "b.jpg", "-o", "out", "--json"],
     ["equalize", "-o", "out", "--json", "a.jpg", "b.jpg"]),
    (["stats", "--file", "numbers.txt", "--json"], ["stats", "--json", "--file", "numbers.txt"]),
    (["stats", "1", "-2", "3", "--timeout", "5"], ["stats", "--timeout", "5", "1", "-2", "3"]),
])
def test_files_and_options_are_taken_in_either_order(options_last, options_first):
    assert cli.parse_args(options_first) == cli.parse_args(options_last)


def test_run_with_options_before_the_files_runs_the_job(stack, worker, capsys, tmp_path):
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("4 5 6")
    code, out, err = run_cli(capsys, "stats", "--json", "--file", str(numbers))
    assert (code, json.loads(out)["sum"]) == (0, 15)
    code, out, err = run_cli(capsys, "run", "stats", "-a", "numbers=1,2", "--json")
    assert (code, err) == (0, "") and json.loads(out)["sum"] == 3


def test_run_with_options_first_writes_outputs_and_numbers_a_second_run(stack, worker, capsys,
                                                                       tmp_path):
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("L", (16, 8), 90).save(photo)
    out = tmp_path / "out"
    for expected in ("photo-gamma.png", "photo-gamma-1.png"):
        code, stdout, err = run_cli(capsys, "run", "gamma", "-a", "gamma=0.5", "-o", str(out),
                                    str(photo), "--timeout", "60")
        assert (code, err) == (0, "") and stdout.strip().endswith(expected)
    assert sorted(p.name for p in out.iterdir()) == ["photo-gamma-1.png", "photo-gamma.png"]
    assert run_cli(capsys, "run", "gamma", str(photo), "-o", str(out), "--force")[0] == 0
    assert len(list(out.iterdir())) == 2


# ---- the shared AWS helpers (worker_src/aws.py) --------------------------------------------------

def test_sqs_batches_hold_at_most_10_entries_and_1_mib():
    from worker_src import aws

    sizes = [100] * 23 + [600_000, 600_000, 1024 * 1024, 5]
    batches = aws.sqs_batches(sizes)
    assert [i for batch in batches for i in batch] == list(range(len(sizes)))
    assert all(len(b) <= 10 and (sum(sizes[i] for i in b) <= 1024 * 1024 or len(b) == 1)
               for b in batches)
    assert [len(b) for b in batches] == [10, 10, 4, 1, 1, 1] and aws.sqs_batches([]) == []


def test_aws_errors_are_described_and_missing_resources_recognised():
    from botocore.exceptions import ClientError

    from worker_src import aws

    def error(code, message="m"):
        return ClientError({"Error": {"Code": code, "Message": message}}, "Op")

    assert aws.queue_missing(error("AWS.SimpleQueueService.NonExistentQueue"))
    assert aws.queue_missing(api.AwsUnavailable("gone", "QueueDoesNotExist"))
    assert not aws.queue_missing(error("NoSuchKey")) and aws.object_missing(error("NoSuchKey"))
    assert aws.error_text(error("Throttling", "slow\n  down")) == "Throttling: slow down"
    assert aws.error_text(error("500", "<html>")) == "500: not an AWS error (an HTML page)"
    assert aws.error_text(ValueError("x")) == "ValueError: x" and aws.error_code(ValueError()) == ""


def test_prepare_checks_once_for_every_caller_and_bounds_integer_arguments():
    from client import jobs

    gamma = jobs.find_kind("gamma")
    job = jobs.prepare("gamma", jobs.parse_args(gamma, {"gamma": "0.5"}),
                       {"image": "my photo.jpg"})
    assert job.kind is gamma and job.args["gamma"] == 0.5 and "image" not in job.args
    assert job.upload_names == {"image": "my_photo.jpg"}
    match = jobs.prepare("match", {}, {"image": "args.json", "reference": "r.png"})
    assert match.upload_names == {"image": "_args.json", "reference": "reference-r.png"}
    with pytest.raises(api.UsageError, match="gamma must be"):
        jobs.prepare("gamma", jobs.parse_args(gamma, {"gamma": "-1"}), {"image": "a.jpg"})
    with pytest.raises(api.UsageError, match="takes no file 'mask'"):
        jobs.prepare("gamma", {}, {"image": "a.jpg", "mask": "m.png"})
    with pytest.raises(api.UsageError, match="unknown"):
        jobs.find_kind("nope")
    stats = jobs.find_kind("stats")
    with pytest.raises(api.UsageError, match="more digits than an integer may have"):
        jobs.parse_args(stats, {"numbers": "1 " + "2" * 100_001})
    int_args = [(kind, arg) for kind in registry_kinds() for arg in kind.args
                if arg.type == "int"]
    assert int_args  # clahe's nbins, at least
    for kind, arg in int_args:
        with pytest.raises(api.UsageError, match=f"{arg.name} must be"):
            jobs.parse_args(kind, {arg.name: "9" * 10_000_000})  # refused by its length


def registry_kinds():
    from worker_src import registry

    return list(registry.kinds().values())
