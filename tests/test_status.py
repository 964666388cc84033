"""`status`: oldest ages (CloudWatch for waiting jobs, the dead letters themselves), --watch."""

import io
import json
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from client import api, cli, cli_ops, dlq
from client.status import StatusReader
from tests.moto_stack import deploy
from worker_src import wire

STACK = "wqw-status"
DASHBOARD = "https://console.example/cloudwatch#dashboards:name=x"


@pytest.fixture
def client(monkeypatch):
    monkeypatch.setattr(dlq, "WAIT_SECONDS", 0)
    with mock_aws():
        stack = deploy(STACK, outputs={"DashboardUrl": DASHBOARD})
        with api.Client(boto3.Session(), stack) as client:
            yield client


def calls(client, service, operation):
    """A list that grows by one for each call of `operation` on a client made after this."""
    made = []
    client.session.events.register(f"before-call.{service}.{operation}",
                                   lambda **_: made.append(1))
    return made


def wait_jobs(client, count):
    for _ in range(count):
        client.sqs.send_message(QueueUrl=client.stack.request_queue_url, MessageBody="{}")


def age_points(client, queue, points):
    cloudwatch = boto3.client("cloudwatch")
    for when, value in points:
        cloudwatch.put_metric_data(Namespace="AWS/SQS", MetricData=[{
            "MetricName": "ApproximateAgeOfOldestMessage", "Value": value, "Unit": "Seconds",
            "Timestamp": when, "Dimensions": [{"Name": "QueueName", "Value": queue}]}])


def test_the_oldest_waiting_age_is_cloudwatchs_newest_point_for_the_request_queue(client):
    wait_jobs(client, 2)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    age_points(client, f"{STACK}-requests", [(now - timedelta(minutes=3), 42.0),
                                             (now - timedelta(minutes=1), 57.0)])
    age_points(client, f"{STACK}-dlq", [(now, 999.0)])  # another queue's
    status = StatusReader(client).read()
    assert (status["waiting"], status["oldest_waiting_age_s"]) == (2, 57.0)
    assert datetime.fromisoformat(status["oldest_waiting_as_of"]) == now - timedelta(minutes=1)


def test_without_cloudwatch_data_the_age_is_unknown_and_says_why(client):
    wait_jobs(client, 1)
    status = StatusReader(client).read()
    assert status["oldest_waiting_age_s"] is None
    assert "no CloudWatch data" in status["oldest_waiting_note"]


def test_no_waiting_job_no_cloudwatch_call_and_no_request_is_ever_received(client):
    cloudwatch = calls(client, "cloudwatch", "GetMetricStatistics")
    received = []
    client.sqs.meta.events.register("provide-client-params.sqs.ReceiveMessage",
                                    lambda params, **_: received.append(params))
    status = StatusReader(client).read()
    assert (status["waiting"], status["oldest_waiting_age_s"], cloudwatch) == (0, None, [])
    wait_jobs(client, 3)
    StatusReader(client).read()
    assert len(cloudwatch) == 1 and received == []  # the request queue is never read


def test_the_oldest_dead_letters_age_comes_from_its_sent_time_and_leaves_it_there(client):
    before = time.time()
    for _ in range(3):
        client.sqs.send_message(QueueUrl=client.stack.dead_letter_queue_url,
                                MessageBody=wire.encode_job(wire.Job(
                                    job_id=wire.new_job_id(), kind="stats", args={},
                                    reply_to=None, submitted_at=1.0)))
        time.sleep(0.01)
    after = time.time()
    status = StatusReader(client).read(now=after + 100)
    assert status["dead_letters"] == 3
    assert 100 - 0.001 <= status["oldest_dead_letter_age_s"] <= 100 + (after - before) + 0.001
    attributes = client.sqs.get_queue_attributes(
        QueueUrl=client.stack.dead_letter_queue_url,
        AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "3"


def test_a_watch_reads_cloudwatch_once_a_minute_and_dead_letters_when_their_number_changes(
        client):
    wait_jobs(client, 1)
    cloudwatch = calls(client, "cloudwatch", "GetMetricStatistics")
    peeks = []
    client.sqs.meta.events.register(
        "provide-client-params.sqs.ReceiveMessage",
        lambda params, **_: peeks.append(1)
        if params["QueueUrl"] == client.stack.dead_letter_queue_url else None)
    client.sqs.send_message(QueueUrl=client.stack.dead_letter_queue_url, MessageBody="x")
    reader = StatusReader(client)
    start = time.time()
    first = reader.read(now=start)
    peeks_after_first = len(peeks)
    reader.read(now=start + 2)
    assert (len(cloudwatch), len(peeks)) == (1, peeks_after_first)
    client.sqs.send_message(QueueUrl=client.stack.dead_letter_queue_url, MessageBody="y")
    second = reader.read(now=start + 4)
    assert len(peeks) > peeks_after_first and second["dead_letters"] == 2
    reader.read(now=start + 61)
    assert len(cloudwatch) == 2
    assert first["oldest_dead_letter_age_s"] >= 0


# ---- the command line ---------------------------------------------------------------------

def run_cli(capsys, *argv):
    code = cli.main([*argv, "--stack", STACK])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_status_json_is_one_document_with_the_ages_and_the_dashboard(client, capsys):
    client.sqs.send_message(QueueUrl=client.stack.dead_letter_queue_url, MessageBody="x")
    code, out, _ = run_cli(capsys, "status", "--json")
    document = json.loads(out)
    assert code == 0 and document["dead_letters"] == 1
    assert 0 <= document["oldest_dead_letter_age_s"] < 60
    assert document["oldest_waiting_age_s"] is None
    assert document["dashboard_url"] == DASHBOARD
    code, out, _ = run_cli(capsys, "status")
    assert code == 0
    assert "dead letters  1, the oldest sent " in out
    assert "dashboard     https://console.example/" in out


def test_cli_status_names_an_unknown_age_on_its_own_line(client, capsys):
    wait_jobs(client, 1)
    code, out, _ = run_cli(capsys, "status")
    assert code == 0 and "oldest job    unknown: no CloudWatch data" in out


def test_watch_redraws_until_ctrl_c_and_exits_0(client, capsys, monkeypatch):
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise KeyboardInterrupt
        wait_jobs(client, 1)

    monkeypatch.setattr(cli_ops, "PAUSE", sleep)
    code, out, _ = run_cli(capsys, "status", "--watch", "--interval", "0.5")
    assert code == 0 and sleeps == [0.5, 0.5, 0.5]
    screens = [line for line in out.splitlines() if line.startswith("requests")]
    assert screens == [f"requests      {n} waiting, 0 in flight, 0 running" for n in range(3)]
    assert out.count("every 0.5 s, ") == 3


def test_watch_with_json_or_a_bad_interval_is_refused(capsys):
    code, out, err = run_cli(capsys, "status", "--watch", "--json")
    assert (code, out) == (2, "") and "pick one" in err
    assert run_cli(capsys, "status", "--interval", "0")[0] == 2


class Flaky:
    """A reader that fails on its second read."""

    def __init__(self):
        self.reads = 0

    def read(self):
        self.reads += 1
        if self.reads == 2:
            raise api.AwsUnavailable("cannot reach AWS")
        return {"stack": "s", "waiting": 0, "in_flight": 0, "oldest_waiting_age_s": None,
                "oldest_waiting_as_of": None, "oldest_waiting_note": None, "dead_letters": 0,
                "oldest_dead_letter_age_s": None, "workers": [], "dashboard_url": None}


class Terminal(io.StringIO):
    def isatty(self):
        return True


def ctrl_c_after(count):
    sleeps = []

    def sleep(_seconds):
        sleeps.append(1)
        if len(sleeps) == count:
            raise KeyboardInterrupt
    return sleep


def test_watch_shows_a_passing_failure_and_goes_on(capsys):
    stream = io.StringIO()
    assert cli_ops.watch(Flaky(), 1, stream=stream, sleep=ctrl_c_after(3)) == 0
    text = stream.getvalue()
    assert text.count("requests      0 waiting") == 2
    assert "error: cannot reach AWS (retrying)" in text


def test_watch_fails_at_once_when_the_first_read_fails():
    class Missing:
        def read(self):
            raise api.StackNotFound("no stack named 'x'")
    with pytest.raises(api.StackNotFound):
        cli_ops.watch(Missing(), 1, stream=io.StringIO(), sleep=ctrl_c_after(1))


def test_on_a_terminal_each_screen_replaces_the_last():
    stream = Terminal()
    cli_ops.watch(Flaky(), 1, stream=stream, sleep=ctrl_c_after(1))
    assert stream.getvalue().startswith("\033[H\033[2J")


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (119.4, "119 s"), (120, "2 min"),
                                           (7199, "119 min"), (7200, "2 h 0 min"),
                                           (3 * 86400 + 5 * 3600, "3 d 5 h")])
def test_durations_read_as_people_say_them(seconds, text):
    assert cli_ops.duration(seconds) == text
