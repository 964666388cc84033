"""The `stats` kind: exact count, min, max, sum, average and median of integers of any size.

Input: exactly one of `numbers` (a JSON list of integers, in the message) and `file`
(a text file of integers separated by whitespace or commas, uploaded to
inputs/<job>/; read as a stream, never whole). Values within 64 bits take numpy's
vectorised path; larger ones are exact Python ints. A file whose values outgrow the
memory budget is computed exactly in a few more streamed passes (_stats_compute).
"""

from __future__ import annotations

import json
from typing import Any

from .. import wire
from ..integer_text import MAX_DIGITS
from ..registry import (
    FILE,
    INTEGERS,
    Arg,
    ArgError,
    JobContext,
    JobFile,
    Kind,
    Limits,
    Output,
    Progress,
    no_progress,
)

# What a pass needs beside the values it keeps: pieces of text, their parsed
# arrays, masks (about 5 MB measured; the rest is margin).
WORKING_BYTES = 16 * 1024 * 1024
# A file takes about a second per 100 MB per pass on one core.
MAX_FILE_BYTES = 10 * 1024**3
# An integer of fewer bits has fewer than MAX_DIGITS digits (log2(10) > 3.32).
_FEWER_DIGITS_BITS = int(MAX_DIGITS * 3.32)

_TYPE_NAMES = {str: "a string", float: "a number with a fraction or exponent",
               bool: "a boolean", type(None): "null", list: "a list", dict: "an object"}


def compute_stats(numbers: object) -> dict[str, Any]:
    """count, min, max, sum, average (and average_exact) and median of `numbers`.

    `numbers` is the job's decoded JSON: anything but a non-empty list of integers
    is bad_input naming the first offending item.
    """
    from ._stats_compute import from_numbers

    if not isinstance(numbers, list):
        raise wire.JobError(
            wire.BAD_INPUT, f"numbers must be a list of integers, got {_describe(numbers)}")
    if not numbers:
        raise wire.JobError(wire.BAD_INPUT, "numbers is an empty list: nothing to compute")
    # bool is a subclass of int, and JSON true/false are not numbers here.
    if not all(type(value) is int for value in numbers):
        position, value = next((i, v) for i, v in enumerate(numbers) if type(v) is not int)
        raise wire.JobError(
            wire.BAD_INPUT, f"item {position + 1} of {len(numbers)} ({_token(value)}, "
            f"{_describe(value)}) is not an integer")
    for position, value in enumerate(numbers):
        if value.bit_length() > _FEWER_DIGITS_BITS and abs(value) >= 10**MAX_DIGITS:
            raise wire.JobError(
                wire.TOO_LARGE, f"item {position + 1} of {len(numbers)} has more than "
                f"{MAX_DIGITS:,} digits, more than an integer may have here")
    return from_numbers(numbers)


def summary(count: int, minimum: int, maximum: int, total: int,
            middle: tuple[int, int]) -> dict[str, Any]:
    """The result value from its figures; `middle` holds the values at ranks (count-1)//2 and
    count//2 (bench/stats.py builds its reference with it)."""
    from ._stats_exact import summary as exact_summary

    return exact_summary(count, minimum, maximum, total, middle)


def file_stats(file: JobFile, limits: Limits,
               progress: Progress = no_progress) -> dict[str, Any]:
    """The statistics of a text file of integers, within the worker's memory budget.

    Progress by passes and bytes read (a file beyond the budget takes more passes).
    """
    from ._stats_compute import from_file

    value, _passes = from_file(file, max(0, limits.memory_budget_bytes - WORKING_BYTES),
                               progress)
    return value


def stats(ctx: JobContext) -> Output:
    if ctx.args.get("numbers") is not None:
        return Output(value=compute_stats(ctx.args["numbers"]))
    return Output(value=file_stats(ctx.files["file"], ctx.limits, ctx.progress))


def _one_input(args: dict[str, Any]) -> None:
    given = [name for name in ("numbers", "file") if args.get(name) is not None]
    if len(given) != 1:
        raise ArgError("numbers", "stats takes exactly one of numbers (a list of integers) "
                                  f"and file (a text file of integers); got "
                                  f"{' and '.join(given) or 'neither'}")


def _describe(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return "an integer"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _token(value: object) -> str:
    """The offending value as the sender wrote it in JSON, shortened."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


KIND = Kind(
    name="stats",
    summary="count, min, max, sum, average and median of integers of any size, exact.",
    run=stats,
    args=(Arg("numbers", INTEGERS, "the integers, of any size", default=None),
          Arg("file", FILE, "a text file of integers separated by whitespace or commas",
              default=None)),
    main_input="file",
    max_input_bytes=MAX_FILE_BYTES,
    check=_one_input,
    # A 10 GiB file takes about 100 s per pass; a few passes on a slow instance.
    time_limit_s=3600,
)
