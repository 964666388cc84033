"""The stats kind against an exact Fraction reference: lists, files, out of core, the wire."""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_numbers import reference as reference_tokens
from test_numbers import texts

from worker_src import wire
from worker_src.integer_text import MAX_DIGITS
from worker_src.jobs import _stats_select, stats
from worker_src.jobs.stats import KIND, WORKING_BYTES, compute_stats, file_stats
from worker_src.registry import ArgError, JobContext, Limits

INT64 = (-(2**63), 2**63 - 1)


def exact_reference(numbers: list[int]) -> dict[str, object]:
    """The statistics as Fractions, computed the plain way."""
    ordered = sorted(numbers)
    count = len(ordered)
    return {"count": count, "min": ordered[0], "max": ordered[-1], "sum": sum(ordered),
            "average": Fraction(sum(ordered), count),
            "median": Fraction(ordered[(count - 1) // 2] + ordered[count // 2], 2)}


def terminates(value: Fraction) -> bool:
    q = value.denominator
    for prime in (2, 5):
        while q % prime == 0:
            q //= prime
    return q == 1


def assert_exact(got: dict, numbers: list[int]) -> None:
    want = exact_reference(numbers)
    for key in ("count", "min", "max", "sum"):
        assert type(got[key]) is int and got[key] == want[key], key
    median = got["median"]
    assert isinstance(median, (int, Decimal)) and Fraction(median) == want["median"]
    assert isinstance(median, int) == (want["median"].denominator == 1)
    average, exact = got["average"], want["average"]
    if terminates(exact):
        assert Fraction(average) == exact and "average_exact" not in got
        assert isinstance(average, int) == (exact.denominator == 1)
        assert set(got) == {"count", "min", "max", "sum", "average", "median"}
        return
    assert got["average_exact"] == f"{exact.numerator}/{exact.denominator}"
    assert isinstance(average, Decimal)
    sign, digit_tuple, exponent = average.as_tuple()
    places = -exponent
    digits = (-1) ** sign * int("".join(map(str, digit_tuple)))
    assert places >= 1 and len(str(abs(digits))) >= 17
    # Correctly rounded: nearer than half a unit of its last place (no ties here).
    assert abs(exact * 10**places - digits) < Fraction(1, 2)


# ---- lists (the numbers argument) ----------------------------------------------------

@pytest.mark.parametrize("numbers", [
    [3, 1, 2], [5], [-5], [0, 0, 0, 0], [1, 2], [1, 3], [4, 1, 3, 2], [-3, -1, -2, -4],
    [1, 2, 2], [2**53, 2**53 + 1], [10**30, 10**30 + 1, 7], [-(10**50), 10**50, 1],
    [10**4500, -(10**4500), 3], [2**64 + 1, 2**64 + 3], [*INT64], [INT64[0], INT64[0]],
    [INT64[1], INT64[1], INT64[1]], [INT64[0] - 1, INT64[1] + 1], [-7, 2**63, 5],
])
def test_examples_are_exact(numbers: list[int]) -> None:
    assert_exact(compute_stats(numbers), numbers)


def test_the_issue_cases_have_every_digit() -> None:
    value = compute_stats([10**20, 10**20 + 1])
    assert wire.dumps(value["median"]) == "100000000000000000000.5"
    big = [10**1000 + 1, 3, -(10**999)]
    value = compute_stats(big)
    assert value["average_exact"] == f"{sum(big)}/3"
    assert_exact(value, big)
    assert value["median"] == 3 and value["sum"] == sum(big)


def test_a_rounded_average_has_17_digits_and_the_exact_fraction() -> None:
    value = compute_stats([1, 2, 2])
    assert value["average"] == Decimal("1.6666666666666667")
    assert value["average_exact"] == "5/3"
    assert compute_stats([0, 0, 1])["average"] == Decimal("0.33333333333333333")
    assert compute_stats([1, 0, 0, 0, 0, 0, 0])["average"] == Decimal("0.14285714285714286")


@pytest.mark.parametrize("count", range(1, 41))
def test_every_small_count(count: int) -> None:
    rng = random.Random(count)
    for bits in (3, 62, 64, 200, 4000):
        numbers = [rng.randint(-(2**bits), 2**bits) for _ in range(count)]
        assert_exact(compute_stats(numbers), numbers)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(), min_size=1, max_size=50))
def test_property_any_integers(numbers: list[int]) -> None:
    assert_exact(compute_stats(numbers), numbers)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-(10**3000), max_value=10**3000), min_size=1,
                max_size=12))
def test_property_thousands_of_digits(numbers: list[int]) -> None:
    assert_exact(compute_stats(numbers), numbers)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=INT64[0] - 3, max_value=INT64[1] + 3) |
                st.sampled_from([*INT64, INT64[0] - 1, INT64[1] + 1]), min_size=1, max_size=30))
def test_property_around_the_64_bit_limits(numbers: list[int]) -> None:
    assert_exact(compute_stats(numbers), numbers)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(), min_size=1, max_size=20), st.randoms())
def test_property_order_does_not_matter(numbers: list[int], rnd: random.Random) -> None:
    shuffled = numbers[:]
    rnd.shuffle(shuffled)
    assert compute_stats(shuffled) == compute_stats(numbers)


def test_input_list_is_not_modified() -> None:
    numbers = [3, 1, 2, 10**30]
    compute_stats(numbers)
    assert numbers == [3, 1, 2, 10**30]


def test_a_million_integers_take_the_vectorised_path() -> None:
    rng = np.random.default_rng(7)
    numbers = rng.integers(INT64[0], INT64[1], size=1_000_000, endpoint=True).tolist()
    assert_exact(compute_stats(numbers), numbers)


@pytest.mark.parametrize(("numbers", "fragment"), [
    ([], "empty list"), ("1 2 3", "got a string"), (None, "got null"),
    ({"a": 1}, "got an object"), (7, "got an integer"), (True, "got a boolean"),
])
def test_not_a_non_empty_list_is_bad_input(numbers: object, fragment: str) -> None:
    with pytest.raises(wire.JobError) as caught:
        compute_stats(numbers)
    assert caught.value.code == wire.BAD_INPUT and fragment in caught.value.message


@pytest.mark.parametrize(("numbers", "message"), [
    ([1, "x", 3], 'item 2 of 3 ("x", a string) is not an integer'),
    ([1, 2, 2.5], "item 3 of 3 (2.5, a number with a fraction or exponent) is not an integer"),
    ([1.0], "item 1 of 1 (1.0, a number with a fraction or exponent) is not an integer"),
    ([True, 1], "item 1 of 2 (true, a boolean) is not an integer"),
    ([None], "item 1 of 1 (null, null) is not an integer"),
    ([1, {"n": 1}], 'item 2 of 2 ({"n": 1}, an object) is not an integer'),
    ([1, [2]], "item 2 of 2 ([2], a list) is not an integer"),
])
def test_each_non_integer_item_is_named_with_its_position(numbers: list, message: str) -> None:
    with pytest.raises(wire.JobError) as caught:
        compute_stats(numbers)
    assert caught.value.code == wire.BAD_INPUT and caught.value.message == message


def test_an_integer_with_too_many_digits_is_too_large() -> None:
    assert_exact(compute_stats([10**MAX_DIGITS - 1, 1]), [10**MAX_DIGITS - 1, 1])
    with pytest.raises(wire.JobError) as caught:
        compute_stats([1, -(10**MAX_DIGITS)])
    assert caught.value.code == wire.TOO_LARGE
    assert caught.value.message.startswith("item 2 of 2 has more than 100,000 digits")


# ---- the kind's arguments ---------------------------------------------------------------

@pytest.mark.parametrize(("args", "given"), [({}, "neither"),
                                              ({"numbers": [1], "file": "k"}, "numbers and file")])
def test_exactly_one_of_numbers_and_file(args: dict, given: str) -> None:
    with pytest.raises(ArgError) as caught:
        KIND.check_args(args)
    assert caught.value.message.endswith(f"got {given}")
    assert KIND.check_args({"numbers": [1]})["file"] is None
    assert KIND.check_args({"file": "inputs/j/numbers.txt"})["numbers"] is None


# ---- the wire: every digit as a JSON number -----------------------------------------

def test_values_travel_the_wire_with_every_digit() -> None:
    numbers = [10**5000 + 2, 3, -7, 10**5000 + 4]
    value = compute_stats(numbers)
    text = wire.encode_result(wire.ok_result(wire.new_job_id(), value))
    assert f'"median":{(10**5000 + 5) // 2}.5}}' in text
    decoded = wire.decode_result(text).value
    assert decoded == value and type(decoded["median"]) is Decimal
    assert_exact(decoded, numbers)
    # A plain reader gets the same JSON numbers (as floats); json.loads(parse_float=Decimal) all.
    assert json.loads(text)["value"]["sum"] == sum(numbers)


def test_dumps_writes_decimals_as_numbers_and_refuses_the_rest() -> None:
    value = {"a": [Decimal("-0.5"), Decimal("12345678901234567890.25")], "s": "\x00x"}
    assert wire.dumps(value) == '{"a": [-0.5, 12345678901234567890.25], "s": "\\u0000x"}'
    assert wire.loads(wire.dumps(value)) == value
    for bad in (Decimal("NaN"), Decimal("Infinity"), object()):
        with pytest.raises(TypeError):
            wire.dumps({"x": bad})


# ---- files ------------------------------------------------------------------------------

@dataclass
class FakeFile:
    """A JobFile over bytes in memory; counts how often it is opened (the passes)."""

    data: bytes
    name: str = "numbers.txt"
    key: str = "inputs/j/numbers.txt"
    opened: int = 0

    @property
    def size(self) -> int:
        return len(self.data)

    def open(self) -> io.BytesIO:
        self.opened += 1
        return io.BytesIO(self.data)

    def read(self) -> bytes:
        raise AssertionError("the stats kind must stream its file, not read it whole")


def write(numbers: list[int], rnd: random.Random) -> bytes:
    parts = []
    for number in numbers:
        parts.append(("+" if number >= 0 and rnd.random() < 0.1 else "") + str(number))
        parts.append(rnd.choice([" ", "\n", ",", ", ", "\r\n", "\t", "  \n"]))
    return "".join(parts).encode()


def limits(budget_values: int) -> Limits:
    """A budget that holds about this many int64 values beside the working memory."""
    return Limits(max_input_bytes=1 << 40, memory_budget_bytes=WORKING_BYTES + 8 * budget_values)


def run_file(data: bytes, budget_values: int = 10**7) -> tuple[dict, int]:
    file = FakeFile(data)
    value = stats.stats(JobContext({"numbers": None}, {"file": file}, limits(budget_values))).value
    return value, file.opened


def values_of(rnd: random.Random, count: int, shape: str) -> list[int]:
    if shape == "int64":
        return [rnd.randint(*INT64) for _ in range(count)]
    if shape == "few":
        return [rnd.choice([-3, 5, 7]) for _ in range(count)]
    if shape == "big":
        return [rnd.randint(-(10**40), 10**40) for _ in range(count)]
    if shape == "huge":
        return [rnd.randint(10**1200, 10**1201) * rnd.choice([1, -1]) for _ in range(count)]
    return [rnd.choice([rnd.randint(-100, 100), rnd.randint(-(10**30), 10**30)])
            for _ in range(count)]


@pytest.mark.parametrize("shape", ["int64", "few", "big", "mixed", "huge"])
def test_files_in_memory_match_the_reference(shape: str) -> None:
    rnd = random.Random(shape)
    for count in [1, 2, 3, 4, 5, 10, 101, 5000]:
        numbers = values_of(rnd, count, shape)
        value, passes = run_file(write(numbers, rnd))
        assert_exact(value, numbers)
        assert passes == 1


@pytest.mark.parametrize("shape", ["int64", "few", "big", "mixed", "huge"])
@pytest.mark.parametrize("budget_values", [0, 50, 1000])
def test_files_beyond_the_budget_are_exact_out_of_core(shape: str, budget_values: int) -> None:
    rnd = random.Random(f"{shape}{budget_values}")
    for count in [1, 2, 3, 1500, 4001]:
        numbers = values_of(rnd, count, shape)
        if rnd.random() < 0.3:
            numbers.sort(reverse=rnd.random() < 0.5)
        value, passes = run_file(write(numbers, rnd), budget_values)
        assert_exact(value, numbers)
        if count * 8 > budget_values * 8 + 10_000:  # cannot all be held
            assert passes > 1


def test_a_large_file_beyond_the_budget_takes_three_passes() -> None:
    rng = np.random.default_rng(11)
    numbers = rng.integers(INT64[0], INT64[1], size=200_000, endpoint=True).tolist()
    value, passes = run_file("\n".join(map(str, numbers)).encode(), budget_values=20_000)
    assert_exact(value, numbers)
    assert passes == 3  # this pass, the sample, the window


def test_a_bad_token_in_a_file_names_its_line_and_column() -> None:
    lines = [str(n) for n in range(200_000)]
    lines[150_000] = "17 1e5"
    with pytest.raises(wire.JobError) as caught:
        run_file(("\n".join(lines) + "\n").encode())
    assert caught.value.code == wire.BAD_INPUT
    assert caught.value.message == "numbers.txt: line 150001, column 4: '1e5' is not an integer"


@pytest.mark.parametrize(("data", "code", "fragment"), [
    (b"", wire.BAD_INPUT, "holds no integers"),
    (b" ,\n\t", wire.BAD_INPUT, "holds no integers"),
    (b"1 2 -", wire.BAD_INPUT, "line 1, column 5: '-' is not an integer"),
    (b"1\n- 3", wire.BAD_INPUT, "line 2, column 1: '-' is not an integer"),
    (b"4 \xd9\xa3", wire.BAD_INPUT, "line 1, column 3: '\\xd9\\xa3' is not an integer"),
    (b"1 " + b"9" * (MAX_DIGITS + 2), wire.TOO_LARGE, "line 1, column 3: '999"),
])
def test_files_that_are_not_integers(data: bytes, code: str, fragment: str) -> None:
    with pytest.raises(wire.JobError) as caught:
        run_file(data)
    assert caught.value.code == code and fragment in caught.value.message


@settings(max_examples=400, deadline=None)
@given(texts)
def test_property_the_worker_reads_files_as_the_client_checks_them(data: bytes) -> None:
    values, bad = reference_tokens(data)
    if bad is None and values:
        assert_exact(run_file(data)[0], values)
        return
    with pytest.raises(wire.JobError) as caught:
        run_file(data)
    if bad is None:
        assert "holds no integers" in caught.value.message
    else:
        assert caught.value.message.startswith(f"numbers.txt: line {bad[0]}, column {bad[1]}:")


def test_numpy_fromstring_saturates_what_does_not_fit() -> None:
    # _stats_parse relies on this to send values beyond 64 bits to the exact path.
    read = np.fromstring(b"9223372036854775808 -9223372036854775809 1" + b"0" * 30,
                         dtype=np.int64, sep=" ")
    assert read.tolist() == [INT64[1], INT64[1], INT64[1]]
    value, _ = run_file(b"9223372036854775807 9223372036854775808 -9223372036854775809")
    assert value["sum"] == 2**63 - 2


def test_file_stats_and_list_stats_agree() -> None:
    numbers = [5, 10**25, -(2**63), 2**63, 0, 7]
    file = FakeFile(" ".join(map(str, numbers)).encode())
    assert file_stats(file, limits(0)) == compute_stats(numbers)


# ---- the selection on its own -----------------------------------------------------------

def test_select_holds_no_more_than_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    values = rng.integers(-1000, 1000, size=50_000)
    chunks = np.array_split(values, 37)
    held = []
    original = _stats_select.Keeper.add

    def add(self: _stats_select.Keeper, array: np.ndarray) -> None:
        original(self, array)
        held.append(self.bytes if not self.overflowed else 0)

    monkeypatch.setattr(_stats_select.Keeper, "add", add)
    ranks = [0, 1, 24_999, 25_000, 49_999]
    found, passes = _stats_select.select(lambda: iter(chunks), len(values), ranks, budget=8000)
    ordered = np.sort(values)
    assert found == {rank: int(ordered[rank]) for rank in ranks}
    assert max(held) <= 8000 and passes > 1


def test_the_floor_log10_of_the_rounding_is_exact() -> None:
    from worker_src.jobs._stats_exact import _floor_log10

    for exponent in range(-30, 30):
        for scale in (Fraction(1), Fraction(999, 1000), Fraction(1001, 1000)):
            value = Fraction(10) ** exponent * scale
            found = _floor_log10(value)
            assert Fraction(10) ** found <= value < Fraction(10) ** (found + 1)
