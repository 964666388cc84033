"""A test kind that takes its time: `slow` sleeps in steps, may report progress, leaves a trace."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from worker_src.registry import BOOL, FILE, FLOAT, IMAGE, INT, STR, Arg, JobContext, Kind, Output
from worker_src.registry import kinds as registered


def slow(ctx: JobContext) -> Output:
    args = ctx.args
    if args["trace"]:  # proof that the function was called, written by the work horse too
        Path(args["trace"]).write_text("called")
    steps = args["steps"]
    for step in range(steps):
        time.sleep(args["seconds"] / steps)
        if args["report"]:
            ctx.progress((step + 1) / steps)
    return Output(value={"slept": args["seconds"]})


SLOW = Kind(
    name="slow", summary="sleeps", run=slow, main_input="data",
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
