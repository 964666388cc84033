"""Log lines cannot be forged: untrusted text escaped, one record per line, metric lines apart."""

import io
import json
import logging
import sys
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import memory_loop
from worker_src import logs, wire

FORGED = '{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"Billing","Dimensions":[[]],' \
         '"Metrics":[{"Name":"Jobs"}]}]},"Jobs":1000000}'


@given(st.text())
def test_escaped_text_is_one_printable_line(text):
    escaped = logs.escape(text)
    assert escaped.isprintable() and "\n" not in escaped and "\r" not in escaped
    if text.isprintable():
        assert escaped == text


@pytest.mark.parametrize("char, shown", [("\n", "\\n"), ("\r", "\\r"), ("\x1b", "\\x1b"),
                                         ("\u2028", "\\u2028"), ("\x85", "\\x85"),
                                         ("\ud800", "\\ud800"), ("\x00", "\\x00")])
def test_each_line_breaking_or_control_character_is_written_as_an_escape(char, shown):
    assert logs.escape(f"a{char}b") == f"a{shown}b"


@pytest.fixture
def worker_log():
    """The worker's own logging set up as __main__ does, on a buffer; restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    buffer = io.StringIO()
    logs.configure(stream=buffer)
    yield buffer
    logging.captureWarnings(False)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    sys.excepthook, threading.excepthook = saved[2], saved[3]


def lines_read_as_metrics(text):
    """The lines CloudWatch Logs would take for Embedded Metric Format documents."""
    found = []
    for line in text.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            found.append(line)
    return found


def test_a_sender_cannot_write_a_metric_line_into_the_worker_log(worker_log):
    broker, _store, worker = memory_loop()
    reply = broker.reply_queue()
    body = {"version": 1, "job_id": wire.new_job_id(), "kind": "stats", "reply_to": reply,
            "submitted_at": 1.0, "args": {"numbers": [1]}, f"x\n{FORGED}\n": 1}
    broker.put(json.dumps(body))
    broker.put(f"not json\n{FORGED}\n")
    worker.process_batch(broker.receive(10, 0))
    written = worker_log.getvalue()
    assert "_aws" in written  # the sender's text is in the log, escaped
    assert lines_read_as_metrics(written) == []
    assert all(line[:4].isdigit() for line in written.splitlines())  # each starts with a time
    assert len(broker.dead) == 2


def test_a_traceback_is_one_line_too(worker_log):
    try:
        raise ValueError(f"bad\n{FORGED}")
    except ValueError:
        logging.getLogger("worker").exception("failed")
    [line] = worker_log.getvalue().splitlines()
    assert "Traceback" in line and lines_read_as_metrics(worker_log.getvalue()) == []


def test_warnings_go_through_the_escaping_formatter(worker_log):
    import warnings

    warnings.warn(f"odd input\n{FORGED}", UserWarning, stacklevel=1)
    text = worker_log.getvalue()
    assert "odd input" in text and lines_read_as_metrics(text) == []


def test_the_metric_lines_are_the_workers_own_and_stay_bare(worker_log, capsys):
    from worker_src import metrics

    metrics.write({"_aws": {"Timestamp": 1}, "Jobs": 1})
    out = capsys.readouterr().out
    assert lines_read_as_metrics(out) == ['{"_aws":{"Timestamp":1},"Jobs":1}']
    assert lines_read_as_metrics(worker_log.getvalue()) == []
