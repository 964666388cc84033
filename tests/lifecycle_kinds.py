"""A test kind that takes its time: `slow` sleeps in steps, may report progress, leaves a trace."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from worker_src.registry import (
    BOOL,
    FILE,
    FLOAT,
    IMAGE,
    INT,
    STR,
    Arg,
    JobFile,
    Kind,
    Limits,
    Output,
)
from worker_src.registry import kinds as registered


def slow(args: dict[str, Any], files: Mapping[str, JobFile], limits: Limits,
         progress: Any = None) -> Output:
    if args["trace"]:  # proof that the function was called, written by the work horse too
        Path(args["trace"]).write_text("called")
    steps = args["steps"]
    for step in range(steps):
        time.sleep(args["seconds"] / steps)
        if progress is not None and args["report"]:
            progress((step + 1) / steps)
    return Output(value={"slept": args["seconds"]})


SLOW = Kind(
    name="slow", summary="sleeps", run=slow, main_input="data", progress=True,
    args=(Arg("seconds", FLOAT, "how long", default=1.0),
          Arg("steps", INT, "in how many steps", default=10, minimum=1),
          Arg("report", BOOL, "report progress after each step", default=True),
          Arg("trace", STR, "a file to write when called", default=""),
          Arg("data", FILE, "an unused input", default=None)))


def kinds_with_slow() -> dict[str, Kind]:
    return {**registered(), "slow": SLOW}


# The same, offered by the web page as an image operation (it lists kinds with an image output).
SLOW_IMAGE = replace(SLOW, name="slowimage", output=IMAGE)


def kinds_with_slow_image() -> dict[str, Kind]:
    return {**kinds_with_slow(), "slowimage": SLOW_IMAGE}
