"""Exact selection within a memory budget: the values at given ranks of a re-readable stream.

For values that do not fit in memory at once (Floyd and Rivest's selection, over passes):

    candidates = every value; repeat until each rank is found:
      if the candidates fit in the budget: one pass keeps them, np.partition finds the ranks
      else: one pass takes a uniform random sample of the candidates; a window [a, b] of
            sample values brackets the ranks' places in the sample, about 4 / sqrt(sample)
            of the candidates wide; one pass counts the values below, inside and above
            the window and keeps those inside while they fit. A rank inside the window is
            then found in memory; one just outside it is the largest value below or the
            smallest above; otherwise the candidates become the part that holds the ranks.

With 65,536 samples one round almost always brackets the ranks in a window of about
1/64 of the values, so beyond the budget the median takes three passes over the input
(the caller's first pass, the sample, the window). The outcome is exact whatever the
sample: a poor one only costs another round, and every round drops at least one
distinct value from the candidates (a window of one value when a round made no
progress), so the loop ends. Works for int64 arrays (vectorised) and object arrays of
Python ints alike.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

# Each call reads the stream again and yields the same values in the same order.
Stream = Callable[[], Iterable[np.ndarray]]

SAMPLE_SIZE = 65_536
# The window is this many standard deviations of a sample rank wide on each side.
WINDOW_SIGMAS = 4.0


def nbytes(values: np.ndarray) -> int:
    """Memory held by an array's values (for object arrays, each Python int too)."""
    if values.dtype != object:
        return values.nbytes
    return values.nbytes + sum(map(sys.getsizeof, values))


class Keeper:
    """Arrays of values kept while they fit in `budget` bytes; after that, none are kept."""

    def __init__(self, budget: int, most: int | None = None) -> None:
        self.budget = budget
        self.most = budget // 8 if most is None else min(most, budget // 8)
        self.bytes = 0
        self.overflowed = False
        self._int64: np.ndarray | None = None  # allocated once, filled in place
        self._count = 0
        self._objects: list[np.ndarray] = []

    def add(self, values: np.ndarray) -> None:
        if self.overflowed or not len(values):
            return
        self.bytes += nbytes(values)
        if self.bytes > self.budget or (
                values.dtype != object and self._count + len(values) > self.most):
            self.overflowed = True
            self._int64, self._objects = None, []
            return
        if values.dtype == object:
            self._objects.append(values)
            return
        if self._int64 is None:
            # Virtual memory only: pages count once written.
            self._int64 = np.empty(self.most, np.int64)
        self._int64[self._count:self._count + len(values)] = values
        self._count += len(values)

    def int64(self) -> np.ndarray:
        """The int64 values kept (a view: partitioning it reorders the keeper's copy)."""
        if self._int64 is None:
            return np.empty(0, np.int64)
        return self._int64[:self._count]

    def objects(self) -> np.ndarray:
        return np.concatenate(self._objects) if self._objects else np.empty(0, object)

    def all(self) -> np.ndarray:
        objects = self.objects()
        return self.int64() if not len(objects) else np.concatenate(
            [self.int64().astype(object), objects])


def at_ranks(values: np.ndarray, ranks: Iterable[int]) -> dict[int, int]:
    """The values at these ranks (0-based, in ascending order); reorders `values`."""
    ranks = sorted(set(ranks))
    values.partition(ranks)
    return {rank: int(values[rank]) for rank in ranks}


@dataclass
class _Candidates:
    low: int | None  # candidates are the values v with low <= v < high (None: no bound)
    high: int | None
    offset: int  # how many values lie below the candidates
    count: int

    def of(self, values: np.ndarray) -> np.ndarray:
        if self.low is not None:
            values = values[values >= self.low]
        if self.high is not None:
            values = values[values < self.high]
        return values


@dataclass
class _Window:
    below: int = 0
    inside: int = 0
    above: int = 0
    largest_below: int | None = None
    smallest_above: int | None = None
    kept: np.ndarray | None = None  # the values inside, if they fitted
    only: int | None = None  # the one value inside a window of one value


def select(stream: Stream, count: int, ranks: Iterable[int], budget: int,
           value_bytes: float = 8.0, seed: int = 0) -> tuple[dict[int, int], int]:
    """The values at `ranks` (0-based) among the `count` values of the stream, and the passes.

    Holds about `budget` bytes of values at most (at least one); `value_bytes` is
    their average size (8 for int64; nbytes(group) / count for Python ints). Ranks
    are found one at a time, or two together when adjacent (a median's two middles).
    """
    found: dict[int, int] = {}
    passes = 0
    ranks = sorted(set(ranks))
    while ranks:
        together = ranks[:2] if len(ranks) > 1 and ranks[1] == ranks[0] + 1 else ranks[:1]
        ranks = ranks[len(together):]
        values, more = _select_adjacent(stream, count, together, budget, value_bytes, seed)
        found.update(values)
        passes += more
    return found, passes


def _select_adjacent(stream: Stream, count: int, ranks: list[int], budget: int,
                     value_bytes: float, seed: int) -> tuple[dict[int, int], int]:
    """select() for one rank or two adjacent ones: those that remain share one region."""
    rng = np.random.default_rng(seed)
    candidates = _Candidates(None, None, 0, count)
    found: dict[int, int] = {}
    passes = 0
    progress = True
    while True:
        wanted = [rank - candidates.offset for rank in ranks if rank not in found]
        if not wanted:
            return found, passes
        if candidates.count * value_bytes <= budget:
            a = b = None
        else:
            # The sample (at most a quarter of the budget) is gone before the window pass.
            a, b = _bracket(_sample(stream, candidates, max(1, int(budget / 4 / value_bytes)),
                                    rng), wanted, candidates.count, wide=progress)
            passes += 1
        window = _window_pass(stream, candidates, a, b, budget)
        passes += 1
        if a is None and window.kept is None:
            value_bytes *= 2  # Python ints bigger than the average: sample instead
            continue
        before = candidates.count
        for rank, value in _settle(window, wanted).items():
            found[rank + candidates.offset] = value
        rest = [rank for rank in wanted if rank + candidates.offset not in found]
        if not rest:
            continue
        assert a is not None and b is not None
        if rest[0] < window.below:
            candidates = _Candidates(candidates.low, a, candidates.offset, window.below)
        elif rest[0] < window.below + window.inside:
            candidates = _Candidates(a, b + 1, candidates.offset + window.below, window.inside)
        else:
            candidates = _Candidates(b + 1, candidates.high,
                                     candidates.offset + window.below + window.inside,
                                     window.above)
        progress = candidates.count < before


def _sample(stream: Stream, candidates: _Candidates, most: int,
            rng: np.random.Generator) -> np.ndarray:
    """A uniform random sample of the candidates (without replacement), sorted."""
    size = min(SAMPLE_SIZE, most, candidates.count)
    positions = np.sort(rng.choice(candidates.count, size=size, replace=False))
    picked = []
    seen = 0
    for values in stream():
        values = candidates.of(values)
        first, last = np.searchsorted(positions, [seen, seen + len(values)])
        if last > first:
            picked.append(values[positions[first:last] - seen])
        seen += len(values)
    sample = np.concatenate(picked)
    sample.sort()
    return sample


def _bracket(sample: np.ndarray, wanted: list[int], count: int, wide: bool) -> tuple[int, int]:
    """A window [a, b] of sample values that very likely holds the wanted ranks.

    Not wide: one value (after a round that dropped no candidate).
    """
    size = len(sample)
    if not wide:
        middle = int(sample[min(size - 1, wanted[0] * size // count)])
        return middle, middle
    spread = WINDOW_SIGMAS * math.sqrt(size) / 2
    first = math.floor(wanted[0] * size / count - spread)
    last = math.ceil((wanted[-1] + 1) * size / count + spread)
    return int(sample[max(0, first)]), int(sample[min(size - 1, last)])


def _window_pass(stream: Stream, candidates: _Candidates, a: int | None, b: int | None,
                 budget: int) -> _Window:
    """Count the candidates below, inside and above [a, b] (None: all inside); keep those inside."""
    window = _Window()
    single = a is not None and a == b
    keeper = None if single else Keeper(budget, most=candidates.count)
    for values in stream():
        values = candidates.of(values)
        if a is not None and b is not None:
            below, above = values < a, values > b
            if below.any():
                window.below += int(np.count_nonzero(below))
                window.largest_below = _larger(window.largest_below, int(values[below].max()))
            if above.any():
                window.above += int(np.count_nonzero(above))
                window.smallest_above = _smaller(window.smallest_above, int(values[above].min()))
            values = values[~(below | above)]
        window.inside += len(values)
        if keeper is not None:
            keeper.add(values)
    if single:
        window.only = a
    elif keeper is not None and not keeper.overflowed:
        window.kept = keeper.all()
    return window


def _settle(window: _Window, ranks: list[int]) -> dict[int, int]:
    """The values at those of the ranks (among the candidates) that this window pass settles."""
    settled = {}
    inside = []
    for rank in ranks:
        if rank == window.below - 1 and window.largest_below is not None:
            settled[rank] = window.largest_below
        elif rank == window.below + window.inside and window.smallest_above is not None:
            settled[rank] = window.smallest_above
        elif window.below <= rank < window.below + window.inside:
            if window.only is not None:
                settled[rank] = window.only
            else:
                inside.append(rank - window.below)
    if inside and window.kept is not None:
        for rank, value in at_ranks(window.kept, inside).items():
            settled[rank + window.below] = value
    return settled


def _larger(a: int | None, b: int) -> int:
    return b if a is None or b > a else a


def _smaller(a: int | None, b: int) -> int:
    return b if a is None or b < a else a
