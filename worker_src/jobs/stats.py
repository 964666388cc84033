"""The `stats` job: exact statistics of a list of integers of any size."""

from __future__ import annotations

import json
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from .. import wire
from ..registry import INTEGERS, Arg, JobFile, Kind, Limits, Output

_TYPE_NAMES = {str: "a string", float: "a number with a fraction or exponent",
               bool: "a boolean", type(None): "null", list: "a list", dict: "an object"}


def compute_stats(numbers: object) -> dict:
    """count, min, max, sum, average and median of `numbers` (the job's decoded JSON).

    count, min, max and sum are exact integers. average and median are an int
    when the exact value is an integer, else the nearest float. A non-integer
    value beyond the float range (about 1.8e308) cannot be given either way and
    is bad_input, as is anything that is not a non-empty list of integers.
    """
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
    ordered = sorted(numbers)
    count = len(ordered)
    total = sum(ordered)
    middle = count // 2
    if count % 2:
        median = Fraction(ordered[middle])
    else:
        median = Fraction(ordered[middle - 1] + ordered[middle], 2)
    return {
        "count": count,
        "min": ordered[0],
        "max": ordered[-1],
        "sum": total,
        "average": exact_number(Fraction(total, count), "average"),
        "median": exact_number(median, "median"),
    }


def exact_number(value: Fraction, name: str = "value") -> int | float:
    """An int if `value` is an integer, else the float nearest to it."""
    if value.denominator == 1:
        return value.numerator
    try:
        # int / int is correctly rounded in CPython, whatever the size of the ints.
        return value.numerator / value.denominator
    except OverflowError:
        raise wire.JobError(
            wire.BAD_INPUT, f"the {name} is not an integer and, at about "
            f"10^{_magnitude(value)}, too large for a floating-point number (max about "
            "1.8e308); the other statistics are exact, but this one cannot be given") from None


def _magnitude(value: Fraction) -> int:
    return len(str(abs(value.numerator) // value.denominator)) - 1


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


def stats(args: dict[str, Any], files: Mapping[str, JobFile], limits: Limits) -> Output:
    return Output(value=compute_stats(args["numbers"]))


KIND = Kind(
    name="stats",
    summary="count, min, max, sum, average and median of a list of integers, exact.",
    run=stats,
    args=(Arg("numbers", INTEGERS, "the integers, of any size"),),
)
