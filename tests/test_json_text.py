"""Bounded JSON: integers counted before they are converted, depth, no NaN; long ints exact."""

import json
import subprocess
import sys
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker_src import json_text, wire

DIGITS = wire.MAX_INTEGER_DIGITS


@pytest.fixture(params=[4300, 0], ids=["cpython-limit", "limit-lifted"])
def digit_limit(request):
    """Run under CPython's default digit limit, and with it lifted (as a client might)."""
    saved = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(request.param)
    yield request.param
    sys.set_int_max_str_digits(saved)


def test_importing_the_worker_leaves_cpythons_digit_limit_in_force():
    code = ("import sys; import worker_src.wire, worker_src.integer_text, "
            "worker_src.worker, worker_src.jobs.stats, worker_src.jobs._stats_parse; "
            "print(sys.get_int_max_str_digits())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "4300"


@settings(max_examples=40, deadline=None)
@given(sign=st.sampled_from(["", "-", "+"]), head=st.integers(1, 9),
       rest=st.text("0123456789", max_size=12_000))
def test_integers_of_any_length_convert_both_ways_under_the_cpython_limit(sign, head, rest):
    saved = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(4300)
    try:
        text = f"{sign}{head}{rest}"
        value = json_text.int_from_text(text)
        assert json_text.int_text(value) == text.lstrip("+")
        assert json_text.int_from_text(text.encode()) == value
    finally:
        sys.set_int_max_str_digits(saved)
    assert value == int(text)  # the reference, with the limit lifted (tests/conftest.py)


@pytest.mark.parametrize("text", ["", "-", "+-1", "1_000", " 12", "12a", "١٢٣", "1" * 5000 + "x"])
def test_anything_but_an_integer_is_refused(text):
    with pytest.raises(ValueError):
        json_text.int_from_text(text)


def test_an_integer_of_the_maximum_length_is_read_one_longer_is_refused_naming_it(digit_limit):
    longest = "9" * DIGITS
    assert wire.parse_json(f'{{"a": [-{longest}]}}')["a"][0] == -(10**DIGITS - 1)
    with pytest.raises(ValueError, match=f"has {DIGITS + 1:,} digits; at most {DIGITS:,}"):
        wire.parse_json(f'{{"a": [1, 2, 3{longest}]}}')


def test_a_ten_million_digit_integer_is_refused_without_converting_it(digit_limit):
    with pytest.raises(ValueError, match="has 10,000,000 digits"):
        wire.parse_json("[" + "7" * 10_000_000 + "]")


def test_integers_of_a_few_thousand_digits_read_exactly(digit_limit):
    numbers = [10**4299 + 1, -(10**4301) - 7, 3]
    text = "[" + ",".join(json_text.int_text(n) for n in numbers) + "]"
    assert wire.parse_json(text) == numbers


def test_results_may_hold_a_sum_a_little_longer_than_any_input():
    value = {"sum": 10**DIGITS * 7}
    assert wire.loads(wire.dumps(value)) == value


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_numbers(constant):
    with pytest.raises(ValueError, match="is not a JSON number"):
        wire.parse_json(f'{{"x": {constant}}}')


def test_nesting_up_to_the_depth_is_read_deeper_is_refused():
    depth = wire.MAX_JSON_DEPTH
    assert wire.parse_json("[" * depth + "]" * depth) is not None
    with pytest.raises(ValueError, match=f"nested deeper than {depth} levels"):
        wire.parse_json('{"a":' + "[" * depth + "]" * depth + "}")


@pytest.mark.parametrize("depth", [2000, 200_000])
def test_nesting_deep_enough_to_exhaust_the_stack_is_a_value_error(depth):
    with pytest.raises(ValueError, match="nested deeper"):
        wire.parse_json("[" * depth + "]" * depth)


def test_brackets_inside_strings_are_not_nesting():
    assert wire.parse_json(json.dumps({"s": "[" * 100})) == {"s": "[" * 100}


@pytest.mark.parametrize("text", [b"\xff\xfe{", b"{\"a\": \"\xc3\x28\"}", b"\x00" * 64, 7, None])
def test_invalid_utf8_binary_and_non_text_are_value_errors(text):
    with pytest.raises(ValueError):
        wire.parse_json(text)


def test_dumps_writes_long_ints_and_decimals_in_full_under_the_limit(digit_limit):
    value = {"big": [10**5000 + 3, -(10**4400)], "d": Decimal("1" * 5000 + ".5"), "n": 7}
    text = wire.dumps(value)
    assert wire.loads(text) == value
    assert json_text.int_text(10**5000 + 3) in text
