"""Dead letters end to end on the local stack, through the CLI as an operator runs it.

A job whose workers are all killed while holding it runs out of receives and SQS moves it to
the dead-letter queue; an unreadable message is moved there by the worker itself. Both are
listed with their reasons; the redriven job's result reaches its waiting client and
`result JOB_ID`; the unreadable one is refused unless forced; purge empties the queue; a
redrive that dies between send and delete duplicates the job once and loses nothing.
"""

import json
import statistics

import pytest

from client import cli, dlq
from client.errors import ClientFailure
from tests.test_metrics import check_emf
from worker_src import contract, wire, wire_lifecycle

from .faulty_worker import POINTS
from .harness import (
    FAULTY_WORKER,
    REAL_WORKER,
    STACK_NAME,
    TEST_WORKER_ENV,
    Faults,
    drain,
    queue_depth,
    stop_workers,
    wait_until,
)

pytestmark = pytest.mark.slow
REDRIVE_HOLD = 2  # seconds: a dead letter a killed redrive held comes back this soon
NAMESPACE = contract.metric_namespace(STACK_NAME)
NUMBERS = [9, -4, 7, 7, 12, 0, 3]


class Killed(BaseException):
    """The redrive process dies here."""


@pytest.fixture
def stack(stack):
    """The package's stack (conftest.py), its dead-letter queue emptied of what other tests
    left there: these tests count what is in it (and purge it, which SQS allows once a minute)."""
    drain(stack, queue_output="DeadLetterQueueUrl")
    return stack


def run_cli(stack, capsys, *argv):
    code = cli.main([*argv, "--stack", STACK_NAME, "--endpoint-url", stack.endpoint_url])
    out, err = capsys.readouterr()
    return code, out, err


def dead_depth(stack):
    return queue_depth(stack, stack.outputs["DeadLetterQueueUrl"])


def expected_stats(numbers):
    """The statistics module's answer (odd counts: the median is one of the numbers)."""
    assert len(numbers) % 2 == 1
    return {"count": len(numbers), "min": min(numbers), "max": max(numbers),
            "sum": sum(numbers), "median": statistics.median(numbers)}


def test_dead_letters_are_listed_redriven_to_their_client_refused_and_purged(
        stack, capsys, tmp_path):
    assert "before_compute" in POINTS
    faults = Faults(tmp_path / "faults")
    job_id = wire.new_job_id()
    faults.set([{"id": "kill", "point": "before_compute", "action": "kill", "jobs": [job_id]}])
    stack.start_workers(1, command=FAULTY_WORKER,
                        env={**faults.env(), **TEST_WORKER_ENV,
                             contract.Env.METRIC_NAMESPACE: NAMESPACE})
    sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
    client = stack.client()
    try:
        client.submit([("stats", {"numbers": NUMBERS})], job_ids=[job_id])
        assert wait_until(lambda: dead_depth(stack) == 1, timeout=60)
        assert len(faults.injected()) == contract.MAX_RECEIVE_COUNT  # killed on every receive
        # After it: in the same batch, the worker's death would take this one down with it.
        sqs.send_message(QueueUrl=stack.outputs["RequestQueueUrl"], MessageBody="not json {")
        assert wait_until(lambda: dead_depth(stack) == 2, timeout=20)

        code, out, _ = run_cli(stack, capsys, "dlq", "list", "--json")
        entries = {e["job_id"]: e for e in json.loads(out)["dead_letters"]}
        assert code == 0 and set(entries) == {job_id, None}
        assert (entries[job_id]["reason"], entries[job_id]["receives"],
                entries[job_id]["kind"]) == ("received 3 times without an answer", 3, "stats")
        assert entries[None]["reason"].startswith("bad_input: the job message is not valid JSON")
        unreadable = entries[None]["message_id"]

        code, out, _ = run_cli(stack, capsys, "result", job_id, "--json")
        assert code == 1 and json.loads(out)["error"]["code"] == wire.INTERNAL  # the stand-in

        faults.set([])  # the cause is fixed: the job can run now
        code, _, err = run_cli(stack, capsys, "dlq", "redrive", unreadable)
        assert code == 1 and "--force" in err
        code, out, _ = run_cli(stack, capsys, "dlq", "redrive", job_id, "--json")
        assert code == 0 and json.loads(out)["redriven"] == [job_id]

        [result] = client.wait([job_id], timeout=30)  # the client that sent it gets it
        assert result.ok and {k: result.value[k] for k in expected_stats(NUMBERS)} == (
            expected_stats(NUMBERS))
        code, out, _ = run_cli(stack, capsys, "result", job_id, "--json")
        assert code == 0 and json.loads(out)["median"] == result.value["median"]

        code, out, _ = run_cli(stack, capsys, "dlq", "redrive", "--all", "--force", "--json")
        report = json.loads(out)
        assert code == 0 and report["redriven"] == [unreadable]
        assert report["method"] == "send-delete" and "StartMessageMoveTask" in report["fallback"]
        # Back from the worker, with its reason: the queue lost nothing on the way.
        assert wait_until(lambda: [d.reason[:9] for d in dlq.list_dead_letters(client)
                                   .dead_letters] == ["bad_input"], timeout=20)

        code, out, err = run_cli(stack, capsys, "dlq", "purge")
        assert (code, out) == (2, "") and dead_depth(stack) == 1
        code, out, _ = run_cli(stack, capsys, "dlq", "purge", "--yes")
        assert code == 0 and out.startswith("purged 1 ") and dead_depth(stack) == 0
    finally:
        client.close()
        stop_workers(stack)
    lines = [check_emf(line) for line in stack.worker_log.read_text().splitlines()
             if line.startswith("{") and job_id in line]
    [document] = lines  # one job, one metric line: the killed attempts wrote none
    assert (document["Kind"], document["Outcome"]) == ("stats", "ok")
    assert document["RunSeconds"] == result.timing["run_s"]
    assert document["QueuedSeconds"] == result.timing["queued_s"]


def test_a_redrive_killed_between_send_and_delete_duplicates_once_and_loses_nothing(stack):
    stack.start_workers(1, command=REAL_WORKER, env=TEST_WORKER_ENV)
    sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
    reply = sqs.create_queue(QueueName=f"{stack.outputs['ReplyQueuePrefix']}crash")["QueueUrl"]
    job_id = wire.new_job_id()
    numbers = list(range(-50, 51, 7))
    sqs.send_message(QueueUrl=stack.outputs["DeadLetterQueueUrl"],
                     MessageBody=wire.encode_job(wire.Job(
                         job_id=job_id, kind="stats", args={"numbers": numbers},
                         reply_to=reply, submitted_at=1.0)))
    results: list[wire.Result] = []

    def replies(count):
        for message in sqs.receive_message(QueueUrl=reply, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=1).get("Messages", []):
            if wire_lifecycle.message_type(message["Body"]) is None:  # not a running word
                results.append(wire.decode_result(message["Body"]))
            sqs.delete_message(QueueUrl=reply, ReceiptHandle=message["ReceiptHandle"])
        return len(results) >= count

    def die(**_kwargs):
        raise Killed

    try:
        crashing = stack.client()
        crashing.sqs.meta.events.register("before-call.sqs.DeleteMessageBatch", die)
        with pytest.raises(Killed):
            dlq.redrive(crashing, [job_id], visibility=REDRIVE_HOLD)
        assert wait_until(lambda: replies(1), timeout=20)  # sent: it ran
        # Its dead letter comes back when the dead process's hold runs out; run it again.
        with stack.client() as client:
            assert wait_until(lambda: [d.job_id for d in dlq.list_dead_letters(client)
                                       .dead_letters] == [job_id], timeout=10)
            assert dlq.redrive(client, [job_id]).redriven == [job_id]
            assert wait_until(lambda: replies(2), timeout=20)
            # The worker sends the reply first, then replaces the stored result.
            assert wait_until(lambda: _stored(client, job_id), timeout=10)
            stored = client.fetch_result(job_id)
        assert not replies(3)  # exactly one duplicate
    finally:
        stop_workers(stack)
        sqs.delete_queue(QueueUrl=reply)  # the package's other tests count reply queues
    assert [r.job_id for r in results] == [job_id, job_id]
    assert results[0].value == results[1].value == stored.value
    assert {k: stored.value[k] for k in expected_stats(numbers)} == expected_stats(numbers)
    assert dead_depth(stack) == 0 and queue_depth(stack, stack.outputs["RequestQueueUrl"]) == 0


def _stored(client, job_id: str) -> bool:
    try:
        return client.fetch_result(job_id).ok
    except ClientFailure:
        return False
