"""The stats of a list or of a streamed file of integers, exact, within a memory budget.

    file -> pieces (_stats_text) -> int64 and Python-int arrays (_stats_parse)
         -> pass 1: count, min, max, sum; values kept while they fit in the budget
         -> in budget: np.partition finds the middle values (linear time)
            beyond:    _stats_select finds them over more passes of the file
         -> the exact result (_stats_exact)

Values are in three groups that never interleave: Python ints below -2**63 < int64
values < Python ints above 2**63 - 1. So a rank falls in one group, and the int64
group, however large the others, stays vectorised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .. import integer_text as text
from .. import wire
from ..registry import JobFile
from ._stats_exact import summary
from ._stats_parse import exact_sum, parse, split
from ._stats_select import Keeper, Stream, at_ranks, nbytes, select

READ_BYTES = 1024 * 1024


@dataclass
class Tally:
    """What one pass learns of every value: count, min, max, sum, the groups' sizes."""

    count: int = 0
    minimum: int | None = None
    maximum: int | None = None
    total: int = 0
    low: int = 0  # values below -2**63
    high: int = 0  # values above 2**63 - 1
    low_bytes: int = 0
    high_bytes: int = 0

    def add(self, small: np.ndarray, big: np.ndarray) -> None:
        for values in (small, big):
            if not len(values):
                continue
            self.count += len(values)
            low, high = int(values.min()), int(values.max())
            self.minimum = low if self.minimum is None else min(self.minimum, low)
            self.maximum = high if self.maximum is None else max(self.maximum, high)
            self.total += exact_sum(values)
        if len(big):
            negative = big[big < 0]
            positive = big[big > 0]
            self.low += len(negative)
            self.high += len(positive)
            self.low_bytes += nbytes(negative)
            self.high_bytes += nbytes(positive)

    def middle_ranks(self) -> tuple[int, int]:
        return (self.count - 1) // 2, self.count // 2

    def result(self, found: dict[int, int]) -> dict:
        first, second = self.middle_ranks()
        assert self.minimum is not None and self.maximum is not None
        return summary(self.count, self.minimum, self.maximum, self.total,
                       (found[first], found[second]))


def from_numbers(numbers: list[int]) -> dict:
    """The stats of a non-empty list of Python ints (checked by the caller)."""
    try:
        small, big = np.array(numbers, dtype=np.int64), np.empty(0, object)
    except OverflowError:
        small, big = split(numbers)
    tally = Tally()
    tally.add(small, big)
    return tally.result(_in_memory(small, big, tally.middle_ranks()))


class Reading:
    """Progress by passes and bytes read: (passes done + this pass's share) / passes expected.

    One pass is expected; once the values outgrow the budget, three (_stats_select), and one
    more each time a pass begins beyond that. What is reported never goes back.
    """

    def __init__(self, size: int, report: Callable[[float], None] | None) -> None:
        self.size = max(1, size)
        self.report = report
        self.passes = 0  # started
        self.expected = 1
        self.read = 0
        self.reported = 0.0

    def start_pass(self) -> None:
        self.passes += 1
        if self.passes > self.expected:
            self.expected = self.passes + 1
        self.read = 0

    def add(self, count: int) -> None:
        self.read += count
        if self.report is not None:
            done = self.passes - 1 + min(1.0, self.read / self.size)
            self.reported = max(self.reported, min(1.0, done / self.expected))
            self.report(self.reported)


def from_file(file: JobFile, budget: int,
              progress: Callable[[float], None] | None = None) -> tuple[dict, int]:
    """The stats of a text file of integers, and how many passes over it they took.

    Holds at most about `budget` bytes of values; `progress` hears how far it is.
    """
    reading = Reading(file.size, progress)
    keeper = Keeper(budget, most=file.size // 2 + 1)
    tally = Tally()
    for small, big in _values(file, reading):
        tally.add(small, big)
        keeper.add(small)
        keeper.add(big)
    if not tally.count:
        raise wire.JobError(wire.BAD_INPUT, f"{file.name} holds no integers: nothing to "
                            "compute (integers are separated by whitespace or commas)")
    ranks = tally.middle_ranks()
    if not keeper.overflowed:
        return tally.result(_in_memory(keeper.int64(), keeper.objects(), ranks)), 1
    found: dict[int, int] = {}
    passes = 1
    reading.expected = 3
    small = tally.count - tally.low - tally.high
    groups = (("low", tally.low, tally.low_bytes), ("small", small, 8 * small),
              ("high", tally.high, tally.high_bytes))
    offset = 0
    for name, count, size in groups:
        inside = [rank - offset for rank in ranks if offset <= rank < offset + count]
        if inside:
            values, more = select(_group(file, name, reading), count, inside, budget,
                                  value_bytes=size / count)
            passes += more
            found.update({rank + offset: value for rank, value in values.items()})
        offset += count
    return tally.result(found), passes


def _in_memory(small: np.ndarray, big: np.ndarray, ranks: tuple[int, ...]) -> dict[int, int]:
    """The values at the ranks, with all values in memory (reorders `small`)."""
    low = np.sort(big[big < 0])
    high = np.sort(big[big > 0])
    found = {rank: int(low[rank]) for rank in ranks if rank < len(low)}
    in_small = [rank - len(low) for rank in ranks if len(low) <= rank < len(low) + len(small)]
    if in_small:
        found.update({rank + len(low): value for rank, value in at_ranks(small, in_small).items()})
    above = len(low) + len(small)
    found.update({rank: int(high[rank - above]) for rank in ranks if rank >= above})
    return found


def _values(file: JobFile, reading: Reading | None = None
            ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(int64 values, Python-int values) of each read of the file, streamed: one pass."""
    splitter = text.Splitter(lines=False)  # lines are counted only to name a bad token
    if reading is not None:
        reading.start_pass()
    stream = file.open()
    try:
        while True:
            data = stream.read(READ_BYTES)
            if reading is not None:
                reading.add(len(data))
            pieces = splitter.feed(data) if data else splitter.end()
            if pieces:
                yield parse(text.joined(pieces))
            if not data:
                return
    except text.TokenError as exc:
        stream.close()
        with file.open() as again:
            exc.line, exc.column = text.locate(again, exc.offset)
        code = wire.TOO_LARGE if exc.too_large else wire.BAD_INPUT
        raise wire.JobError(code, f"{file.name}: {exc}") from None
    finally:
        stream.close()


def _group(file: JobFile, name: str, reading: Reading | None = None) -> Stream:
    """A stream of one group's values: 'low' and 'high' Python ints, or 'small' int64."""
    def stream() -> Iterator[np.ndarray]:
        for small, big in _values(file, reading):
            if name == "small":
                yield small
            elif len(big):
                yield big[big < 0] if name == "low" else big[big > 0]
    return stream
