"""client/numbers.py: the reader against a line-by-line reference; uploads through moto."""

from __future__ import annotations

import copy
import io
import random
import re
from decimal import Decimal

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from client import api, numbers
from worker_src import contract, wire
from worker_src import integer_text as text

BUCKET = "numbers-unit"
JOB_ID = "2f1c7f4e-8d4b-4d55-9a39-3f0c2b1e9a10"


def reference(data: bytes) -> tuple[list[int], tuple[int, int, bytes] | None]:
    """The integers of the text, or the (line, column, token) of the first bad one.

    Written from the format's description, one line at a time (lines end at \\n).
    """
    values = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        bom = number == 1 and line.startswith(b"\xef\xbb\xbf")
        if bom:
            line = line[3:]
        for match in re.finditer(rb"[^ \t\r\v\f,]+", line):
            token = match.group()
            if not re.fullmatch(rb"[+-]?[0-9]+", token):
                return values, (number, match.start() + 1, token)
            values.append(int(token))
    return values, None


class Pipe(io.RawIOBase):
    """A stream that cannot seek, as stdin: the reader counts lines as it reads."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:
        return self._data.readinto(buffer)


def read_all(reader: numbers.NumberReader, sizes: random.Random) -> bytes:
    parts = []
    while True:
        part = reader.read(sizes.choice([1, 2, 7, 100, 70_000, -1]))
        if not part:
            return b"".join(parts)
        parts.append(part)


# Text made of the characters that matter: digits, signs, every separator, and junk.
texts = st.lists(st.sampled_from(
    [b"0", b"1", b"7", b"9", b"12", b"-", b"+", b" ", b"\n", b"\t", b"\r", b"\v", b"\f",
     b",", b"x", b".", b"e", b"\x00", b"\xc3\xa9", b"\xef\xbb\xbf", b"123456789012345"]),
    max_size=60).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(texts, st.randoms(use_true_random=False))
def test_reader_counts_or_blames_like_the_reference(data: bytes, rnd: random.Random) -> None:
    values, bad = reference(data)
    reader = numbers.NumberReader(io.BytesIO(data) if rnd.random() < 0.5 else Pipe(data))
    if bad is None and values:
        assert read_all(reader, rnd) == data  # passed on unchanged
        assert reader.count == len(values)
        return
    with pytest.raises((text.TokenError, numbers.NoIntegers)) as caught:
        read_all(reader, rnd)
    if bad is None:
        assert caught.type is numbers.NoIntegers
    else:
        assert caught.type is text.TokenError
        assert (caught.value.line, caught.value.column, caught.value.token) == bad


@pytest.mark.parametrize("stream", [io.BytesIO, Pipe])
def test_the_message_names_line_column_and_token(stream: type) -> None:
    data = b"1 2 3\n4, 5\n  -6 +7 12x4 8\n"
    with pytest.raises(text.TokenError) as caught:
        numbers.NumberReader(stream(data)).read()
    assert str(caught.value) == "line 3, column 9: '12x4' is not an integer"


@pytest.mark.parametrize("stream", [io.BytesIO, Pipe])
def test_a_bad_token_far_into_a_large_text_is_found_across_pieces(stream: type) -> None:
    lines = [str(n) for n in range(300_000)]
    lines[234_567] = "12-3"
    data = ("\n".join(lines) + "\n").encode()
    reader = numbers.NumberReader(stream(data))
    with pytest.raises(text.TokenError) as caught:
        while reader.read(1 << 20):
            pass
    assert (caught.value.line, caught.value.column) == (234_568, 1)
    assert reader.count < 234_567  # stopped there


def test_the_end_of_the_text_is_checked_before_its_last_bytes_are_returned() -> None:
    reader = numbers.NumberReader(io.BytesIO(b"1 2 3 4x"))
    with pytest.raises(text.TokenError):
        reader.read(100)  # a short read would tell boto3 the stream has ended


@pytest.mark.parametrize("stream", [io.BytesIO, Pipe])
def test_a_token_longer_than_an_integer_may_be_is_too_large(stream: type) -> None:
    long = b"7" * (text.MAX_TOKEN_CHARS + 1)
    reader = numbers.NumberReader(stream(b"1 2\n3 " + long + b" 4"))
    with pytest.raises(text.TokenError) as caught:
        read_all(reader, random.Random(1))
    assert caught.value.too_large and (caught.value.line, caught.value.column) == (2, 3)
    assert "longer than an integer may be" in str(caught.value)
    ok = b"-" + b"9" * text.MAX_DIGITS
    reader = numbers.NumberReader(io.BytesIO(ok + b"\n" + ok))
    assert read_all(reader, random.Random(2)) == ok + b"\n" + ok and reader.count == 2


def test_a_byte_order_mark_is_skipped_and_counts_for_no_column() -> None:
    reader = numbers.NumberReader(io.BytesIO(b"\xef\xbb\xbf5 y"))
    with pytest.raises(text.TokenError) as caught:
        reader.read()
    assert (caught.value.line, caught.value.column) == (1, 3)


# ---- uploads through moto ---------------------------------------------------------

@pytest.fixture
def client():
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        stack = api.StackInfo(name="unit", request_queue_url="", dead_letter_queue_url="",
                              bucket=BUCKET, reply_queue_prefix="unit-reply-")
        yield api.Client(boto3.Session(), stack)


def bucket_is_empty(client: api.Client) -> bool:
    objects = client.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    uploads = client.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    return not objects and not uploads


def test_a_small_text_goes_up_in_one_put_unchanged(client: api.Client) -> None:
    data = b"3 1 2\n-10, 10\n"
    key, count = numbers.upload_numbers(client, JOB_ID, io.BytesIO(data), name="n.txt")
    assert key == contract.input_key(JOB_ID, numbers.INPUT_NAME) and count == 5
    assert client.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data


def test_a_large_text_goes_up_in_parts_unchanged(client: api.Client) -> None:
    rng = random.Random(3)
    data = "\n".join(str(rng.randint(-2**63, 2**63 - 1)) for _ in range(900_000)).encode()
    assert len(data) > 2 * numbers.PART_BYTES
    key, count = numbers.upload_numbers(client, JOB_ID, io.BytesIO(data))
    assert count == 900_000
    assert client.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data


def test_a_bad_token_in_a_small_text_leaves_nothing_in_s3(client: api.Client) -> None:
    with pytest.raises(api.UsageError) as caught:
        numbers.upload_numbers(client, JOB_ID, io.BytesIO(b"1 2\n3 four\n"), name="n.txt")
    assert str(caught.value) == "n.txt: line 2, column 3: 'four' is not an integer"
    assert caught.value.exit_code == 2
    assert bucket_is_empty(client)


def test_a_bad_token_after_some_parts_aborts_the_multipart_upload(
        client: api.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    good = b"1234567890\n" * (3 * numbers.PART_BYTES // 11)
    data = good + b"12.5\n7\n"
    # One thread: the parts before the bad token surely went up before it is read (with
    # threads a part may still be waiting for one when the upload is aborted).
    one_thread = copy.copy(numbers.STREAMED)
    one_thread.use_threads = False
    monkeypatch.setattr(numbers, "STREAMED", one_thread)
    calls = []
    client.s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    with pytest.raises(api.UsageError) as caught:
        numbers.upload_numbers(client, JOB_ID, io.BytesIO(data), name="big.txt")
    line = good.count(b"\n") + 1
    assert str(caught.value) == f"big.txt: line {line}, column 1: '12.5' is not an integer"
    assert "UploadPart" in calls and "AbortMultipartUpload" in calls  # parts went up
    assert "CompleteMultipartUpload" not in calls and "PutObject" not in calls
    assert bucket_is_empty(client)


def test_a_text_with_no_integers_is_refused_and_leaves_nothing(client: api.Client) -> None:
    with pytest.raises(api.UsageError) as caught:
        numbers.upload_numbers(client, JOB_ID, io.BytesIO(b" \n,\n"), name="blank.txt")
    assert "blank.txt: holds no integers" in str(caught.value)
    assert bucket_is_empty(client)


# ---- the human output ---------------------------------------------------------------

def test_short_numbers_are_shown_with_every_digit() -> None:
    assert numbers.shown(Decimal("100000000000000000000.5")) == "100000000000000000000.5"
    assert numbers.shown(-12) == "-12" and numbers.shown(Decimal("0.25")) == "0.25"
    assert numbers.shown("5/3") == "5/3"


def test_long_numbers_keep_both_ends_and_say_how_many_digits() -> None:
    value = 10**1000 + 123
    shown = numbers.shown(value)
    assert shown.startswith("1000000") and shown.endswith("0123 (1,001 digits)")
    assert len(shown) < 80
    half = numbers.shown(Decimal(f"{10**999 * 5 + 1}.5"))
    assert half.endswith("01.5 (1,001 digits)")


def test_other_values_are_shown_as_they_are() -> None:
    key = "outputs/2f1c7f4e-8d4b-4d55-9a39-3f0c2b1e9a10/a-very-long-photo-name-gamma.jpg"
    assert numbers.shown(key) == key and numbers.shown(True) == "True"
    fraction = f"{10**70}/3"
    assert numbers.shown(fraction).endswith("/3 (72 digits)")


# ---- integers bounded while read, converted without lifting the interpreter's limit ------------

@pytest.fixture
def interpreter_limit():
    """CPython's default digit limit, as a process that never lifts it has (wire.py does)."""
    import sys

    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(4300)
    yield
    sys.set_int_max_str_digits(before)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=wire.MAX_INTEGER_DIGITS), st.sampled_from("+-"),
       st.integers(min_value=0))
def test_integers_up_to_the_bound_are_read_and_shown_exactly(length, sign, seed) -> None:
    import sys

    rnd = random.Random(seed)
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(4300)
    try:
        digits = str(rnd.randint(1, 9)) + "".join(rnd.choices("0123456789", k=length - 1))
        value = numbers.parse_integer(sign + digits)
        # Decimal converts to int without the interpreter's digit limit.
        assert value == int(Decimal(sign + digits))
        assert numbers.shown(value, limit=10**6) == sign.replace("+", "") + digits
    finally:
        sys.set_int_max_str_digits(before)


@pytest.mark.parametrize("token", ["1" * (wire.MAX_INTEGER_DIGITS + 1),
                                   "-" + "9" * 10_000_000, "+12x" + "3" * 200_000])
def test_a_token_past_the_bound_is_refused_by_its_length_naming_it(token, interpreter_limit):
    # Converting 10 million digits would take hours: the refusal comes before any conversion.
    with pytest.raises(numbers.NotAnInteger, match="more digits than an integer may have") as e:
        numbers.parse_integer(token)
    assert repr(token[:40]) in str(e.value) and f"({len(token):,} characters)" in str(e.value)


def test_the_bound_is_the_contracts_and_the_longest_allowed_is_read(interpreter_limit):
    longest = "7" * wire.MAX_INTEGER_DIGITS
    assert numbers.parse_integer(longest) % 10**6 == 777_777
    assert numbers.shown(numbers.parse_integer(longest)).endswith("(100,000 digits)")
    assert text.MAX_DIGITS == wire.MAX_INTEGER_DIGITS  # the file format's bound too


def test_text_and_json_name_the_offending_token(interpreter_limit):
    long = "5" * (wire.MAX_INTEGER_DIGITS + 1)
    with pytest.raises(api.UsageError, match=r"\(item 3\)$") as error:
        numbers.integers_from_text(f"1, 2 {long}")
    assert "more digits" in str(error.value)
    assert numbers.load_json('{"numbers": [1, -' + "4" * 5000 + "]}")["numbers"][1] == \
        -int(Decimal("4" * 5000))
    with pytest.raises(numbers.NotAnInteger, match="more digits"):
        numbers.load_json(f'{{"numbers": [1, {long}]}}')
    with pytest.raises(ValueError, match="nested too deeply"):
        numbers.load_json("[" * 100_000 + "]" * 100_000)
