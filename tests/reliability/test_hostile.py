"""Hostile messages on the local stack: each sent in one batch with good jobs; a job over its
time or memory in the work horse; a crash of the work horse. One real worker lives through all.
"""

import json
import time
import uuid

import pytest

from worker_src import contract, wire, wire_lifecycle

from .harness import (
    TEST_WORKER_ENV,
    Faults,
    dead_letters,
    queue_depth,
    spawn_worker,
    stop_process,
    wait_until,
)

pytestmark = pytest.mark.slow
ROW, LIMITS_ROW = "hostile messages, one batch with good jobs", "over a limit in the work horse"
TIME_LIMIT_S, BUDGET_MB = 3, 64
FORGED = ('{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"Forged","Dimensions":[[]],'
          '"Metrics":[{"Name":"Jobs"}]}]},"Jobs":1}')


class Env:
    def __init__(self, stack, worker, faults, log, reply):
        self.stack, self.worker, self.faults, self.log, self.reply = (stack, worker, faults,
                                                                      log, reply)
        self.sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
        self.s3 = stack.session().client("s3", endpoint_url=stack.endpoint_url)
        self.results: dict[str, wire.Result] = {}

    def body(self, **fields):
        job = {"version": 1, "job_id": wire.new_job_id(), "kind": "stats",
               "args": {"numbers": [5, 1, 3]}, "reply_to": self.reply,
               "submitted_at": time.time(), **fields}
        return job["job_id"], json.dumps(job)

    def send_batch(self, bodies):
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)]
        response = self.sqs.send_message_batch(QueueUrl=self.stack.outputs["RequestQueueUrl"],
                                               Entries=entries)
        assert not response.get("Failed"), response.get("Failed")

    def wait_results(self, job_ids, timeout=60):
        deadline = time.monotonic() + timeout
        while not set(job_ids) <= set(self.results) and time.monotonic() < deadline:
            for message in self.sqs.receive_message(QueueUrl=self.reply, WaitTimeSeconds=1,
                                                    MaxNumberOfMessages=10).get("Messages", []):
                self.sqs.delete_message(QueueUrl=self.reply,
                                        ReceiptHandle=message["ReceiptHandle"])
                if wire_lifecycle.message_type(message["Body"]) is not None:
                    continue  # a long job's running word
                result = wire.decode_result(message["Body"])
                self.results[result.job_id] = result
        return {job_id: self.results.get(job_id) for job_id in job_ids}

    def alive(self):
        return self.worker.poll() is None


@pytest.fixture(scope="module")
def env(stack, tmp_path_factory, recorder):
    faults = Faults(tmp_path_factory.mktemp("hostile"))
    log = faults.plan.parent / "worker.log"
    worker = spawn_worker(stack, log, {**faults.env(), **TEST_WORKER_ENV,
                                       contract.Env.TIME_LIMIT_S: str(TIME_LIMIT_S),
                                       contract.Env.MEMORY_BUDGET_MB: str(BUDGET_MB)})
    assert wait_until(lambda: faults.events("started"), timeout=30)
    sqs = stack.session().client("sqs", endpoint_url=stack.endpoint_url)
    reply = sqs.create_queue(QueueName=f"{stack.outputs['ReplyQueuePrefix']}hostile"
                                       f"{uuid.uuid4().hex[:8]}")["QueueUrl"]
    yield Env(stack, worker, faults, log, reply)
    sqs.delete_queue(QueueUrl=reply)
    [code] = stop_process(worker)
    assert code == 0


def hostile_bodies(env):
    """Each class of hostile message: (body, the words of its reason, job id if readable)."""
    def with_id(text_of_body, words, **fields):
        job_id, body = env.body(**fields)
        return text_of_body(body), words, job_id

    return {
        "deep nesting": ("[" * 100_000 + "]" * 100_000, "nested deeper than 32", None),
        "a number past the float range": with_id(
            lambda b: b, "submitted_at must be a number", submitted_at=10**400),
        "a 900,000-digit integer": with_id(
            lambda b: b.replace("[5, 1, 3]", "[" + "7" * 900_000 + "]"),
            "has 900,000 digits; at most 100,000"),
        "NaN": with_id(lambda b: b, "NaN is not a JSON number", submitted_at=float("nan")),
        "a lone surrogate": with_id(lambda b: b.replace('"kind": "stats"', '"kind": "\\ud800"'),
                                    "kind must be a job kind's name"),
        "a forged metric line in a field name": with_id(
            lambda b: b.replace('"kind"', json.dumps(f"k\n{FORGED}\n") + ': 1, "kind"'),
            "unknown field(s)"),
        "256 KiB of garbage": ("\ufffd garbage " * 23_000, "not valid JSON", None),
    }


def test_each_hostile_message_is_dead_lettered_and_its_batch_mates_answered(env, recorder):
    cases = hostile_bodies(env)
    good, answered, dead_count = [], 0, 0
    for name, (body, words, job_id) in cases.items():
        mates = [env.body() for _ in range(3)]
        good += [job for job, _ in mates]
        env.send_batch([mates[0][1], body, mates[1][1], mates[2][1]])
        dead = wait_until(lambda body=body: [m for m in dead_letters(env.stack)
                                             if m["Body"] == body], timeout=60)
        assert dead, f"{name}: not dead-lettered"
        reason = dead[0]["MessageAttributes"]["error"]["StringValue"]
        assert reason.startswith("bad_input: ") and words in reason, (name, reason)
        dead_count += 1
        if job_id is not None:  # its id and reply queue could be read: the sender is told
            result = env.wait_results([job_id])[job_id]
            assert result is not None and result.error_code == wire.BAD_INPUT, name
            answered += 1
    results = env.wait_results(good)
    assert all(r is not None and r.ok and r.value["median"] == 3 for r in results.values())
    assert env.alive()
    assert queue_depth(env.stack, env.stack.outputs["RequestQueueUrl"]) == 0
    emf = [line for line in env.log.read_text(errors="replace").splitlines()
           if line.startswith("{") and "Forged" in line]
    assert emf == []  # the sender's line is in the log, escaped, never a line of its own
    recorder.add_hostile(ROW, {"inputs tried": len(cases) + len(good),
                               "answered": answered + len(good), "dead-lettered": dead_count,
                               "lost": 0, "workers stalled": int(not env.alive())})


def test_an_args_json_over_the_digit_limit_is_answered_bad_input(env, recorder):
    job_id = wire.new_job_id()
    key = contract.args_key(job_id)
    env.s3.put_object(Bucket=env.stack.outputs["BucketName"], Key=key,
                      Body=b'{"numbers": [1, ' + b"9" * 200_000 + b"]}")
    _, body = env.body(job_id=job_id)
    job = json.loads(body)
    del job["args"]
    job["args_key"] = key
    mate, mate_body = env.body()
    env.send_batch([json.dumps(job), mate_body])
    results = env.wait_results([job_id, mate])
    assert results[job_id].error_code == wire.BAD_INPUT
    assert "has 200,000 digits" in results[job_id].error_message and results[mate].ok
    recorder.add_hostile(ROW, {"inputs tried": 2, "answered": 2, "lost": 0})


@pytest.mark.parametrize("case", ["time", "memory", "crash"])
def test_a_job_over_a_limit_is_answered_and_the_next_job_promptly_too(env, recorder, case):
    job_id, body = env.body()
    rule = {"id": f"{case}-{job_id}", "point": "in_compute", "jobs": [job_id]}
    rule.update({"time": {"action": "delay", "seconds": 60},
                 "memory": {"action": "hog", "megabytes": 4 * BUDGET_MB + 256},
                 "crash": {"action": "kill", "times": 1}}[case])
    env.faults.set([rule])
    started = time.monotonic()
    env.send_batch([body])
    result = env.wait_results([job_id])[job_id]
    assert result is not None, case
    if case == "time":
        assert result.error_code == wire.TIME_LIMIT
        assert f"({TIME_LIMIT_S} s)" in result.error_message
    elif case == "memory":
        assert result.error_code == wire.TOO_LARGE and "MiB" in result.error_message
    else:  # the work horse died on the first attempt; the second one succeeded
        assert result.ok and result.attempt == 2
    after, after_body = env.body()
    sent = time.monotonic()
    env.send_batch([after_body])
    assert env.wait_results([after], timeout=30)[after].ok
    assert env.alive()
    env.faults.set([])
    recorder.add_hostile(LIMITS_ROW, {"inputs tried": 2, "answered": 2, "lost": 0,
                                      "workers stalled": int(not env.alive())})
    recorder.note(f"hostile input, {case}: answered {result.error_code or 'ok'} "
                  f"{sent - started:.2f} s after it was sent; the next job "
                  f"{time.monotonic() - sent:.2f} s after its own")
