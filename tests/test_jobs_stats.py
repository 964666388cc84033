"""The stats job against Python's statistics module, with exact (Fraction) arithmetic."""

from __future__ import annotations

import json
import random
import statistics
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker_src import wire
from worker_src.jobs.stats import compute_stats


def reference(numbers: list[int]) -> dict:
    """What the statistics should be, computed independently of the job's code."""
    fractions = [Fraction(n) for n in numbers]
    return {
        "count": len(numbers),
        "min": min(numbers),
        "max": max(numbers),
        "sum": sum(numbers),
        "average": statistics.mean(fractions),
        "median": statistics.median(fractions),
    }


def assert_matches_reference(numbers: list[int]) -> None:
    got = compute_stats(numbers)
    want = reference(numbers)
    assert set(got) == set(want)
    for key in ("count", "min", "max", "sum"):
        assert type(got[key]) is int and got[key] == want[key], key
    for key in ("average", "median"):
        exact = want[key]
        if exact.denominator == 1:
            assert type(got[key]) is int and got[key] == exact, key
        else:
            # The nearest float: Fraction -> float rounds correctly.
            assert type(got[key]) is float and got[key] == float(exact), key


@pytest.mark.parametrize("numbers", [
    [3, 1, 2],
    [5],
    [-5],
    [0, 0, 0, 0],
    [1, 2],  # even count, non-integer median 1.5
    [1, 3],  # even count, integer median 2
    [4, 1, 3, 2],
    [-3, -1, -2, -4],
    [1, 2, 2],  # average 5/3: a float, not truncated
    [2**53, 2**53 + 1],  # beyond float precision: median must not round to 2**53
    [10**30, 10**30 + 1, 7],
    [-(10**50), 10**50, 1],
    [10**4500, -(10**4500), 3],  # more than 4300 digits
    [2**64 + 1, 2**64 + 3],
])
def test_examples_match_statistics_module(numbers: list[int]) -> None:
    assert_matches_reference(numbers)


def test_result_is_exact_where_the_value_is_an_integer() -> None:
    big = 10**400
    result = compute_stats([big, big + 2])
    assert result["average"] == big + 1 and type(result["average"]) is int
    assert result["median"] == big + 1
    assert result["sum"] == 2 * big + 2


def test_non_integer_near_float_precision_is_the_nearest_float() -> None:
    numbers = [10**20, 10**20 + 1]
    result = compute_stats(numbers)
    assert result["average"] == float(Fraction(2 * 10**20 + 1, 2))
    assert compute_stats([1, 2, 4])["average"] == pytest.approx(7 / 3, rel=0, abs=0)


def test_non_integer_beyond_float_range_is_bad_input_naming_the_statistic() -> None:
    with pytest.raises(wire.JobError) as caught:
        compute_stats([10**400, 10**400 + 1])
    assert caught.value.code == wire.BAD_INPUT
    assert "average" in caught.value.message and "10^400" in caught.value.message


def test_median_beyond_float_range_is_bad_input_even_when_the_average_fits() -> None:
    # The average is 0; the median is (2 * 10**400 - 1) / 2.
    numbers = [-3 * 10**400, 10**400, 10**400 + 1, 10**400 - 1]
    assert sum(numbers) == 0
    with pytest.raises(wire.JobError) as caught:
        compute_stats(numbers)
    assert caught.value.code == wire.BAD_INPUT and "median" in caught.value.message


def test_result_survives_the_wire() -> None:
    numbers = [10**5000 + 1, 3, -7, 10**5000 + 3]
    value = compute_stats(numbers)
    result = wire.ok_result(wire.new_job_id(), value)
    assert wire.decode_result(wire.encode_result(result)).value == json.loads(json.dumps(value))
    assert wire.decode_result(wire.encode_result(result)).value["sum"] == sum(numbers)


@pytest.mark.parametrize(("numbers", "fragment"), [
    ([], "empty list"),
    ("1 2 3", "got a string"),
    (None, "got null"),
    ({"a": 1}, "got an object"),
    (7, "got an integer"),
    (True, "got a boolean"),
])
def test_not_a_non_empty_list_is_bad_input(numbers: object, fragment: str) -> None:
    with pytest.raises(wire.JobError) as caught:
        compute_stats(numbers)
    assert caught.value.code == wire.BAD_INPUT
    assert fragment in caught.value.message


@pytest.mark.parametrize(("numbers", "message"), [
    ([1, "x", 3], 'item 2 of 3 ("x", a string) is not an integer'),
    ([1, 2, 2.5], "item 3 of 3 (2.5, a number with a fraction or exponent) is not an integer"),
    ([1.0], "item 1 of 1 (1.0, a number with a fraction or exponent) is not an integer"),
    ([True, 1], "item 1 of 2 (true, a boolean) is not an integer"),
    ([1, False], "item 2 of 2 (false, a boolean) is not an integer"),
    ([None], "item 1 of 1 (null, null) is not an integer"),
    ([1, {"n": 1}], 'item 2 of 2 ({"n": 1}, an object) is not an integer'),
    ([1, [2]], "item 2 of 2 ([2], a list) is not an integer"),
    ([1, "12"], 'item 2 of 2 ("12", a string) is not an integer'),
])
def test_each_non_integer_token_is_named_with_its_position(numbers: list, message: str) -> None:
    with pytest.raises(wire.JobError) as caught:
        compute_stats(numbers)
    assert caught.value.code == wire.BAD_INPUT
    assert caught.value.message == message


def test_first_offending_token_is_reported_and_long_tokens_are_shortened() -> None:
    with pytest.raises(wire.JobError) as caught:
        compute_stats([1, 2, "y" * 500, 3.5])
    message = caught.value.message
    assert message.startswith("item 3 of 4 (") and "..." in message and len(message) < 120


def test_random_lists_match_statistics_module() -> None:
    rng = random.Random(1234)
    for _ in range(300):
        size = rng.randint(1, 60)
        bits = rng.choice([4, 31, 64, 200, 1000])  # < 1.8e308
        numbers = [rng.randint(-(2**bits), 2**bits) for _ in range(size)]
        assert_matches_reference(numbers)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(), min_size=1, max_size=50))
def test_property_matches_statistics_module(numbers: list[int]) -> None:
    assert_matches_reference(numbers)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=-(10**300), max_value=10**300), min_size=1, max_size=9))
def test_property_huge_ints_never_overflow(numbers: list[int]) -> None:
    assert_matches_reference(numbers)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(), min_size=1, max_size=20), st.randoms())
def test_property_order_does_not_matter(numbers: list[int], rnd: random.Random) -> None:
    shuffled = numbers[:]
    rnd.shuffle(shuffled)
    assert compute_stats(shuffled) == compute_stats(numbers)


def test_input_list_is_not_modified() -> None:
    numbers = [3, 1, 2]
    compute_stats(numbers)
    assert numbers == [3, 1, 2]


def test_a_million_integers() -> None:
    rng = random.Random(7)
    numbers = [rng.randint(-(10**12), 10**12) for _ in range(1_000_000)]
    result = compute_stats(numbers)
    ordered = sorted(numbers)
    assert result["count"] == 1_000_000
    assert result["sum"] == sum(numbers)
    assert (result["min"], result["max"]) == (ordered[0], ordered[-1])
    assert result["median"] == float(Fraction(ordered[499_999] + ordered[500_000], 2)) or (
        result["median"] == (ordered[499_999] + ordered[500_000]) // 2)
