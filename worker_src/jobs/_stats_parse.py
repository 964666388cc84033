"""Integers of a stats file, parsed with numpy: 64-bit values vectorised, larger ones exact."""

from __future__ import annotations

import numpy as np

from .. import integer_text as text
from .. import wire

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_EMPTY_SMALL = np.empty(0, np.int64)
_EMPTY_BIG = np.empty(0, object)


def parse(piece: text.Piece) -> tuple[np.ndarray, np.ndarray]:
    """The piece's integers: those that fit in 64 bits (int64), the others (Python ints).

    TokenError names the first token that is not an integer.
    """
    data = piece.data
    if not (_signs_before_digits(data, b"-") and _signs_before_digits(data, b"+")):
        raise text.first_bad_token(piece)
    if b"," in data:
        data = data.replace(b",", b" ")
    try:
        # C's strtoll for each token separated by whitespace; anything else stops it.
        small = np.fromstring(data, dtype=np.int64, sep=" ")
    except ValueError:
        raise text.first_bad_token(piece) from None
    if len(small) == 1 and not data.strip():
        return _EMPTY_SMALL, _EMPTY_BIG  # np.fromstring reads blank text as one 0
    if len(small) and small.max() == INT64_MAX:
        # np.fromstring gives INT64_MAX for every value that does not fit: read exactly.
        # Tokens are at most MAX_DIGITS long (the Splitter checked): converted locally.
        return split(wire.int_from_text(token) for token in text.tokens(piece))
    return small, _EMPTY_BIG


def split(values: object) -> tuple[np.ndarray, np.ndarray]:
    """Python ints as (those within int64 as int64, the others as an object array)."""
    small, big = [], []
    for value in values:  # type: ignore[attr-defined]
        (small if INT64_MIN <= value <= INT64_MAX else big).append(value)
    return np.array(small, dtype=np.int64), np.array(big, dtype=object)


def exact_sum(values: np.ndarray) -> int:
    """The sum of an int64 or object array as an exact Python int (no int64 overflow)."""
    if not len(values):
        return 0
    if values.dtype == object:
        return int(values.sum())
    # Halves of at most 32 bits: each sum fits in int64 for arrays under 2**31 values.
    return (int((values >> 32).sum()) << 32) + int((values & 0xFFFFFFFF).sum())


def _signs_before_digits(data: bytes, sign: bytes) -> bool:
    """Every `sign` in data is followed by a digit (np.fromstring reads '- 3' as -3)."""
    if sign not in data:
        return True
    codes = np.frombuffer(data, np.uint8)
    after = np.flatnonzero(codes == sign[0]) + 1
    if after[-1] == len(codes):
        return False
    return bool(((codes[after] - ord("0")) < 10).all())
