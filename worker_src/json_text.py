"""JSON text read within limits and written without loss: long integers, Decimals, depth.

Standard library only (the client imports it through wire.py). The limits themselves are
the wire format's (wire.MAX_INTEGER_DIGITS, wire.MAX_JSON_DEPTH); this module applies
whatever it is given.

CPython refuses to convert integers of more than 4300 digits to or from text unless that
limit is lifted for the whole process, and converts in time quadratic in the digits. Here
the limit stays in force: a token's digits are counted before it is converted, and
longer integers are converted in halves (`int_from_text`) or through Decimal (`int_text`).
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from decimal import Decimal
from typing import Any

# Longer integers than this are converted here, not by int()/str() (CPython's limit: 4300).
_NATIVE_DIGITS = 4000
# An int of at most this many bits has at most 4000 digits (log10(2) < 1/3.32).
_NATIVE_BITS = int(_NATIVE_DIGITS * 3.32)
_INTEGER = re.compile(r"[+-]?[0-9]+")


def loads(text: str | bytes, *, exact: bool, max_digits: int, max_depth: int) -> Any:
    """The value of JSON text; ValueError saying what is wrong (or over a limit).

    exact: numbers with a fraction or exponent as Decimal, else as float. Whatever the
    text holds (any depth, any number, invalid UTF-8), this ends in a value or ValueError.
    """
    def integer(token: str) -> int:
        digits = len(token) - token.startswith("-")
        if digits > max_digits:
            raise ValueError(f"the integer {token[:12]}... has {digits:,} digits; at most "
                             f"{max_digits:,} are allowed")
        return int_from_text(token)

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    if not isinstance(text, (str, bytes, bytearray)):
        raise ValueError(f"JSON text must be str or bytes, not {type(text).__name__}")
    options: dict[str, Any] = {"parse_float": Decimal if exact else float,
                               "parse_constant": constant}
    try:
        value = _native_ints(text, options, max_digits)
        if value is _TOO_LONG:  # an integer int() refused: each one counted, then converted
            value = json.loads(text, parse_int=integer, **options)
    except RecursionError:
        raise ValueError(f"arrays and objects are nested deeper than {max_depth} "
                         f"levels") from None
    # Fewer brackets than the depth allowed (strings' brackets counted too): no walk needed.
    opening = ("[", "{") if isinstance(text, str) else (b"[", b"{")
    if sum(text.count(mark) for mark in opening) > max_depth and _depth_over(value, max_depth):
        raise ValueError(f"arrays and objects are nested deeper than {max_depth} levels")
    return value


_TOO_LONG = object()


def _native_ints(text: str | bytes, options: dict[str, Any], max_digits: int) -> Any:
    """json.loads with its own int(), in C, while CPython's digit limit is in force.

    That limit refuses a longer token before converting it: the value, or _TOO_LONG. A
    process that lifted the limit gets _TOO_LONG at once (every token is then counted).
    """
    if not 0 < sys.get_int_max_str_digits() <= max_digits:
        return _TOO_LONG
    try:
        return json.loads(text, **options)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            return _TOO_LONG
        raise


def _depth_over(value: Any, max_depth: int) -> bool:
    """Whether arrays and objects nest deeper than max_depth (breadth first, no recursion)."""
    if not isinstance(value, (dict, list)):
        return False
    level, depth = [value], 1
    while True:
        level = [v for item in level
                 for v in (item.values() if isinstance(item, dict) else item)
                 if isinstance(v, (dict, list))]
        if not level:
            return False
        depth += 1
        if depth > max_depth:
            return True


def int_from_text(text: str | bytes) -> int:
    """An integer's decimal text (an optional sign, then ASCII digits) as an int, any length.

    Long ones are read in halves, so the time grows as multiplication does, not
    quadratically; the caller bounds the length. ValueError for anything else.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("ascii", errors="replace")
    if not _INTEGER.fullmatch(text):  # int() would take " 1_000 " and other digits too
        raise ValueError(f"invalid literal for int() with base 10: {text[:20]!r}")
    if len(text) <= _NATIVE_DIGITS:
        return int(text)
    sign = text[0] if text[0] in "+-" else ""
    value = _digits_value(text[len(sign):])
    return -value if sign == "-" else value


def _digits_value(digits: str) -> int:
    if len(digits) <= _NATIVE_DIGITS:
        return int(digits)
    low = len(digits) // 2
    return _digits_value(digits[:-low]) * 10**low + _digits_value(digits[-low:])


def int_text(value: int) -> str:
    """An int's decimal text, any length (str() stops at CPython's limit)."""
    if value.bit_length() <= _NATIVE_BITS:
        return str(value)
    return format(Decimal(value), "f")


def dumps(value: Any, **options: Any) -> str:
    """JSON text as json.dumps writes it, with every digit of each Decimal and long int.

    The standard library cannot write a number it does not know as a number (nor an int
    past CPython's limit), so each goes out as a placeholder string unique to this call,
    then replaced by its digits.
    """
    numbers: list[str] = []
    mark = f"\x00{uuid.uuid4().hex}:"

    def number(item: Any) -> str:
        if isinstance(item, _LongInt):
            numbers.append(item.text)
        elif isinstance(item, Decimal) and item.is_finite():
            numbers.append(format(item, "f"))
        else:
            raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")
        return f"{mark}{len(numbers) - 1}"

    text = json.dumps(_long_ints_wrapped(value), default=number, **options)
    if not numbers:
        return text
    placeholder = re.compile(re.escape(json.dumps(mark)[:-1]) + r'(\d+)"')
    return placeholder.sub(lambda match: numbers[int(match.group(1))], text)


class _LongInt:
    """An int too long for the json module's writer, as its text."""

    def __init__(self, value: int) -> None:
        self.text = int_text(value)


def _long_ints_wrapped(value: Any) -> Any:
    """`value` with each int past CPython's limit wrapped (copies only what changes)."""
    if type(value) is int:
        return _LongInt(value) if value.bit_length() > _NATIVE_BITS else value
    if isinstance(value, dict):
        items = {key: _long_ints_wrapped(item) for key, item in value.items()}
        return items if any(items[key] is not item for key, item in value.items()) else value
    if isinstance(value, (list, tuple)):
        if all(type(item) is int and item.bit_length() <= _NATIVE_BITS for item in value):
            return value
        changed = [_long_ints_wrapped(item) for item in value]
        return changed if any(a is not b for a, b in zip(changed, value, strict=True)) else value
    return value
