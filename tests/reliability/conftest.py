"""One local stack for the whole suite; figures written to $WQW_RELIABILITY_REPORT."""

import json
import os
from pathlib import Path

import pytest

from client.local import LocalStack

from .harness import HOSTILE_ROWS, STACK_NAME, VISIBILITY_TIMEOUT, Recorder


@pytest.fixture(scope="package")
def recorder():
    recorder = Recorder()
    yield recorder
    if os.environ.get("WQW_FUZZ_FIGURES"):  # bench/reliability.py ran the fuzzer first
        add_fuzz_figures(recorder, json.loads(Path(os.environ["WQW_FUZZ_FIGURES"]).read_text()))
    if os.environ.get("WQW_RELIABILITY_REPORT"):
        recorder.write(Path(os.environ["WQW_RELIABILITY_REPORT"]))


def add_fuzz_figures(recorder, tally):
    """The fuzzer's tally (tests/test_fuzz_messages.py) as a row of the hostile-input table."""
    recorder.add_hostile(HOSTILE_ROWS[0], {
        "inputs tried": tally["inputs"], "answered": tally["answered"],
        "dead-lettered": tally["dead-lettered"], "lost": tally["lost"],
        "workers stalled": tally["held"]})
    recorder.note(f"fuzzer: {tally['inputs']:,} messages decoded (each a job or a wire error), "
                  f"{tally['loop']:,} of them through the worker loop beside a good job; "
                  f"slowest decode {tally['slowest decode'] * 1000:.1f} ms "
                  f"({tally['slowest input']})")


@pytest.fixture(scope="package")
def stack(tmp_path_factory):
    """The CDK template in the emulator, no workers: each test module starts its own."""
    log = tmp_path_factory.mktemp("stack") / "workers.log"
    with LocalStack(stack_name=STACK_NAME, workers=0, worker_log=log,
                    context={"visibility_timeout": str(VISIBILITY_TIMEOUT)}) as stack:
        yield stack
