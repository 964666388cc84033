"""The real worker (`worker_src.__main__.main()`), with every AWS request it sends recorded.

    WQW_BENCH_REQUEST_LOG=/tmp/requests.jsonl python -m bench._counted_worker

Each request becomes one JSON line in that file as soon as its response is back, so the
benchmark can read counts while the worker runs and may kill it at any time.
"""

from __future__ import annotations

import os
import sys

import boto3

from bench._common import REQUEST_LOG_ENV, RequestRecorder
from worker_src.__main__ import main


def run() -> int:
    sink = open(os.environ[REQUEST_LOG_ENV], "a", encoding="utf-8")  # noqa: SIM115
    recorder = RequestRecorder(sink)

    class CountedSession(boto3.Session):
        def client(self, *args, **kwargs):  # type: ignore[override]
            return recorder.attach(super().client(*args, **kwargs))

    boto3.Session = CountedSession  # main() builds its clients from boto3.Session()
    try:
        return main()
    finally:
        sink.close()


if __name__ == "__main__":
    sys.exit(run())
