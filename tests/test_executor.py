"""The executing side through its seam: an in-memory store, kinds found by name, no SQS."""

import pytest

from worker_src import contract, registry, wire, workhorse
from worker_src.executor import Executor
from worker_src.store import MemoryStore

JOB = "0f8fad5b-d9cb-469f-a165-70867728950e"


def echo(ctx):
    """A plugin kind that reports what the executor handed it."""
    args, files = ctx.args, ctx.files
    value = {"args": args, "files": {n: f.read().decode() for n, f in files.items()},
             "max_pixels": ctx.limits.max_pixels}
    if args.get("emit"):
        return registry.Output(value, data=b"out:" + files["doc"].read(),
                               content_type="text/plain", suffix=".txt")
    return registry.Output(value)


ECHO = registry.Kind(
    name="echo", summary="echoes", run=echo, main_input="doc", max_input_bytes=10,
    max_pixels=1000,
    args=(registry.Arg("doc", registry.FILE, "a file"),
          registry.Arg("times", registry.INT, "how often", default=1, minimum=1, maximum=3),
          registry.Arg("emit", registry.BOOL, "write an output file", default=False)))


def job(args, kind="echo", **changes):
    return wire.Job(job_id=JOB, kind=kind, args=args, reply_to=None, submitted_at=1.0,
                    **changes)


@pytest.fixture
def store():
    store = MemoryStore()
    store.put(contract.input_key(JOB, "a.txt"), b"hello", "text/plain")
    return store


def run(store, args, **kw):
    executor = Executor(store, identity="test", kinds={"echo": ECHO}, **kw)
    return executor.execute(job(args), attempt=2)


def test_a_kind_is_found_by_name_and_gets_checked_args_files_and_limits(store):
    execution = run(store, {"doc": contract.input_key(JOB, "a.txt")})
    result = execution.result
    assert result.ok and result.attempt == 2 and result.worker == "test"
    assert result.value == {"args": {"times": 1, "emit": False}, "files": {"doc": "hello"},
                            "max_pixels": 1000}
    assert execution.kind == "echo" and execution.input_bytes == 5
    assert set(result.timing) == {"queued_s", "fetch_s", "run_s", "store_s"}


def test_the_worker_setting_overrides_the_kinds_pixel_limit(store):
    result = run(store, {"doc": contract.input_key(JOB, "a.txt")}, max_pixels=7).result
    assert result.value["max_pixels"] == 7


def test_an_output_file_goes_under_the_jobs_own_key_named_after_input_and_kind(store):
    result = run(store, {"doc": contract.input_key(JOB, "a.txt"), "emit": True}).result
    key = contract.output_key(JOB, "a-echo.txt")
    assert result.value["output_key"] == key and result.value["bytes"] == 9
    assert store.objects[key] == b"out:hello" and store.content_types[key] == "text/plain"


@pytest.mark.parametrize("args, code, fragment", [
    ({"doc": "inputs/another-job/a.txt"}, wire.BAD_INPUT, f"under inputs/{JOB}/"),
    ({"doc": contract.input_key(JOB, "none.txt")}, wire.NOT_FOUND, "none.txt"),
    ({}, wire.BAD_INPUT, "needs the argument doc"),
    ({"doc": contract.input_key(JOB, "a.txt"), "times": 9}, wire.BAD_INPUT,
     "times must be an integer >= 1 and <= 3, got 9"),
    ({"doc": contract.input_key(JOB, "a.txt"), "color": 1}, wire.BAD_INPUT,
     "echo has no argument 'color'"),
])
def test_bad_arguments_are_answered_naming_the_argument(store, args, code, fragment):
    result = run(store, args).result
    assert (result.ok, result.error_code) == (False, code)
    assert fragment in result.error_message


def test_a_file_over_the_kinds_limit_is_too_large_before_it_is_read(store):
    store.put(contract.input_key(JOB, "big.txt"), b"x" * 11, "text/plain")
    result = run(store, {"doc": contract.input_key(JOB, "big.txt")}).result
    assert result.error_code == wire.TOO_LARGE


def test_unknown_kinds_name_the_kinds_this_worker_runs(store):
    executor = Executor(store, identity="test", kinds={"echo": ECHO})
    result = executor.execute(job({}, kind="resize"), attempt=1).result
    assert result.error_code == wire.BAD_INPUT
    assert "unknown job kind 'resize'; this worker runs echo" in result.error_message


def test_arguments_too_large_for_a_message_are_read_from_s3(store):
    store.put(contract.args_key(JOB), b'{"doc": "inputs/%s/a.txt", "times": 3}' % JOB.encode(),
              "application/json")
    executor = Executor(store, identity="test", kinds={"echo": ECHO})
    result = executor.execute(job(None, args_key=contract.args_key(JOB)), attempt=1).result
    assert result.ok and result.value["args"]["times"] == 3


def test_a_failure_that_may_pass_propagates_for_the_loop_to_retry(store):
    store.fail_reads = 1  # the inputs are read in the work horse: its error comes back as Failed
    with pytest.raises(workhorse.Failed, match="ConnectionError: injected: connection reset"):
        run(store, {"doc": contract.input_key(JOB, "a.txt")})


def test_the_registry_finds_every_module_in_jobs_and_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys; from worker_src import registry; k = registry.kinds(); "
            "print(sorted(k)); print([m for m in ('numpy', 'PIL', 'skimage') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert {"stats", "equalize"} <= set(eval(out[0]))  # noqa: S307 - our own output
    assert out[1] == "[]"
