"""The stats result from exact integers: every digit of the median and of the average.

The median is an integer or an integer and a half, so always a finite decimal. The
average sum/count is a finite decimal when the reduced count has no prime factors but
2 and 5; otherwise it is correctly rounded (to nearest, in integer arithmetic: no
floats) to at least 17 significant digits and at least one decimal place, and the
exact value travels beside it as the string "p/q" in `average_exact`. Non-integers
are `decimal.Decimal`s, which `wire` writes as JSON numbers with every digit.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from ..wire import int_text

# Significant digits of a rounded average: more than a float's 17, whatever its size.
AVERAGE_DIGITS = 17


def summary(count: int, minimum: int, maximum: int, total: int,
            middle: tuple[int, int]) -> dict[str, int | Decimal | str]:
    """The result value; `middle` holds the values at ranks (count-1)//2 and count//2."""
    value: dict[str, int | Decimal | str] = {
        "count": count, "min": minimum, "max": maximum, "sum": total}
    average = Fraction(total, count)
    value["average"] = decimal_of(average)
    if value["average"] is None:
        value["average"] = rounded(average)
        value["average_exact"] = f"{int_text(average.numerator)}/{int_text(average.denominator)}"
    value["median"] = decimal_of(Fraction(middle[0] + middle[1], 2))
    return value


def decimal_of(value: Fraction) -> int | Decimal | None:
    """The value as an int or an exact Decimal; None if its decimal does not terminate."""
    if value.denominator == 1:
        return value.numerator
    twos = _multiplicity(value.denominator, 2)
    fives = _multiplicity(value.denominator, 5)
    if 2**twos * 5**fives != value.denominator:
        return None
    places = max(twos, fives)
    return _scaled(value.numerator * 10**places // value.denominator, places)


def rounded(value: Fraction) -> Decimal:
    """The value correctly rounded to max(17 significant digits, 1 decimal place)."""
    exponent = _floor_log10(abs(value))  # 10**exponent <= |value| < 10**(exponent + 1)
    places = max(1, AVERAGE_DIGITS - 1 - exponent)
    quotient, remainder = divmod(value.numerator * 10**places, value.denominator)
    # Nearest; never a tie: an exact half would make the decimal terminate.
    if 2 * remainder > value.denominator:
        quotient += 1
    return _scaled(quotient, places)


def _scaled(digits: int, places: int) -> Decimal:
    """digits * 10**-places, exactly (the Decimal constructor never rounds)."""
    return Decimal(f"{int_text(digits)}E-{places}")


def _multiplicity(number: int, prime: int) -> int:
    times = 0
    while number % prime == 0:
        number //= prime
        times += 1
    return times


def _floor_log10(value: Fraction) -> int:
    """floor(log10(value)) for value > 0, exactly."""
    p, q = value.numerator, value.denominator
    exponent = len(int_text(p)) - len(int_text(q))  # the answer or one more
    if exponent >= 0:
        return exponent if p >= q * 10**exponent else exponent - 1
    return exponent if p * 10**-exponent >= q else exponent - 1

