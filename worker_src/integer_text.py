"""The text of a stats input file: integers separated by whitespace or commas, checked as read.

Standard library only: the worker parses files with it and the client checks a file
with it before and while uploading it, so both sides accept exactly the same text.

    1 2 3
    -40, +5,6
    123456789012345678901234567890

A token is an optional sign and ASCII digits (`[+-]?[0-9]+`, at most MAX_TOKEN_CHARS
characters); separators are any mix of space, tab, newline, carriage return, vertical
tab, form feed and comma. A UTF-8 byte order mark at the very start is skipped. Lines
end at newlines and columns count characters from 1.

A `Splitter` cuts a byte stream into `Piece`s of at most PIECE_BYTES bytes (plus the
end of a token that began in the previous piece) that end between tokens, each with
the line and column where it starts. `count_tokens` checks a piece and counts its
tokens; `first_bad_token` finds the exact token to blame when a check fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import BinaryIO

from .wire import MAX_INTEGER_DIGITS

SEPARATORS = b" \t\n\r\v\f,"
# One integer: a sign and wire.MAX_INTEGER_DIGITS digits, as in a job's JSON.
MAX_DIGITS = MAX_INTEGER_DIGITS
MAX_TOKEN_CHARS = MAX_DIGITS + 1
# A piece holds at most this much new text, less than one token may hold: so a token
# longer than the limit always starts in one piece and ends in a later one, where the
# Splitter measures it.
PIECE_BYTES = 64 * 1024

BOM = b"\xef\xbb\xbf"
_TOKEN = re.compile(rb"[^ \t\n\r\v\f,]+")
_INTEGER = re.compile(rb"[+-]?[0-9]+")
_SEPARATOR = re.compile(rb"[ \t\n\r\v\f,]")
# In a piece's classes: a sign that is not after a separator or not before a digit.
_BAD_SIGN = re.compile(rb"-(?:(?!0)|(?<=[^ ]-))")
# Each byte as its class: digit '0', sign '-', separator ' ', anything else 'x'.
_CLASSES = bytes(
    ord("0") if 48 <= b <= 57 else ord("-") if b in b"+-" else ord(" ") if b in SEPARATORS
    else ord("x") for b in range(256))
_SHOWN_CHARS = 40


class TokenError(ValueError):
    """A token that is not an integer (or too long for one), and where it starts.

    `offset` is the token's position in the stream (in bytes, from 0); `line` and
    `column` are None when the splitter did not count lines (see `locate`).
    """

    def __init__(self, offset: int, token: bytes, problem: str, too_large: bool = False,
                 where: tuple[int, int] | None = None) -> None:
        super().__init__(problem)
        self.offset = offset
        self.token = token
        self.problem = problem
        self.too_large = too_large
        self.line, self.column = where if where is not None else (None, None)

    def __str__(self) -> str:
        place = (f"line {self.line}, column {self.column}" if self.line is not None
                 else f"byte {self.offset + 1}")
        return f"{place}: {shown(self.token)} {self.problem}"


def shown(token: bytes) -> str:
    """A token as the message shows it: quoted, non-ASCII escaped, long ones cut."""
    quoted = repr(token[:_SHOWN_CHARS])[1:]  # bytes' repr without its b
    if len(token) > _SHOWN_CHARS:
        quoted += f"... ({len(token):,} characters)"
    return quoted


@dataclass(frozen=True)
class Piece:
    """Whole tokens of the stream (and separators): data[0] is at `offset` in the stream.

    `line` and `column` of data[0], or 0 when lines are not counted.
    """

    data: bytes
    offset: int
    line: int = 0
    column: int = 0

    def where(self, index: int) -> tuple[int, int] | None:
        """The line and column of data[index] (None when lines are not counted)."""
        if not self.line:
            return None
        newline = self.data.rfind(b"\n", 0, index)
        if newline < 0:
            return self.line, self.column + index
        return self.line + self.data.count(b"\n", 0, index), index - newline


def joined(pieces: list[Piece]) -> Piece:
    """Consecutive pieces as one (the worker parses a whole read at once)."""
    if len(pieces) == 1:
        return pieces[0]
    first = pieces[0]
    return Piece(b"".join(piece.data for piece in pieces), first.offset, first.line,
                 first.column)


def locate(stream: BinaryIO, offset: int) -> tuple[int, int]:
    """The line and column of byte `offset` of a stream (read again from its start)."""
    line, line_start, seen = 1, 0, 0
    bom = False
    while seen < offset:
        data = stream.read(min(1024 * 1024, offset - seen))
        if not data:
            break
        if not seen:
            bom = data.startswith(BOM)
        newlines = data.count(b"\n")
        if newlines:
            line += newlines
            line_start = seen + data.rfind(b"\n") + 1
        seen += len(data)
    return line, offset - line_start + 1 - (len(BOM) if bom and line == 1 else 0)


class Splitter:
    """Cuts a byte stream, fed in any sizes, into Pieces that end between tokens.

    lines=False: no line counting (one pass fewer over the text); errors then carry
    the token's offset only, for `locate`.
    """

    def __init__(self, lines: bool = True) -> None:
        self._tail = b""  # the start of a token that the next bytes may continue
        self._offset = 0  # the stream position of the tail
        self._line, self._column = (1, 1) if lines else (0, 0)  # of the tail
        self._started = False  # past the byte order mark, if any

    def feed(self, data: bytes) -> list[Piece]:
        """The pieces complete with these bytes; the last token, maybe unfinished, is kept."""
        pieces = []
        for start in range(0, len(data), PIECE_BYTES):
            piece = self._cut(data[start:start + PIECE_BYTES])
            if piece is not None:
                pieces.append(piece)
        return pieces

    def end(self) -> list[Piece]:
        """The last piece (the stream has ended)."""
        if not self._started and BOM.startswith(self._tail):
            self._tail = b""  # nothing but (part of) a byte order mark
        self._started = True
        self._check_length(len(self._tail))
        piece = Piece(self._tail, self._offset, self._line, self._column)
        self._tail = b""
        return [piece] if piece.data else []

    def _cut(self, data: bytes) -> Piece | None:
        text = self._tail + data
        if not self._started:
            if len(text) < len(BOM) and BOM.startswith(text):
                self._tail = text
                return None
            self._started = True
            if text.startswith(BOM):
                text = text[len(BOM):]
                self._offset = len(BOM)
        if self._tail:
            first = _SEPARATOR.search(text, len(self._tail))
            self._check_length(first.start() if first else len(text))
        end = _last_separator(text) + 1
        piece = Piece(text[:end], self._offset, self._line, self._column)
        self._tail = text[end:]
        self._offset += end
        if self._line:
            self._line, self._column = piece.where(end)  # type: ignore[misc]
        return piece if piece.data else None

    def _check_length(self, length: int) -> None:
        if length > MAX_TOKEN_CHARS:
            where = (self._line, self._column) if self._line else None
            raise TokenError(self._offset, self._tail[:_SHOWN_CHARS],
                             f"is longer than an integer may be ({length:,}+ characters; "
                             f"at most a sign and {MAX_DIGITS:,} digits)", too_large=True,
                             where=where)


def _last_separator(text: bytes) -> int:
    """The index of the last separator in text, or -1."""
    window = max(0, len(text) - 4096)
    last = max(text.rfind(separator, window) for separator in SEPARATORS)
    if last < 0 and window:
        last = max(text.rfind(separator, 0, window) for separator in SEPARATORS)
    return last


def count_tokens(piece: Piece) -> int:
    """The number of integers in the piece; TokenError names the first bad token.

    Standard library only (the client has no numpy): a few passes of bytes methods
    over the piece's classes of bytes.
    """
    classes = piece.data.translate(_CLASSES)
    if b"x" in classes or (b"-" in classes and _BAD_SIGN.search(classes)):
        raise first_bad_token(piece)
    while b"  " in classes:
        classes = classes.replace(b"  ", b" ")
    if not classes:
        return 0
    # One separator between tokens now.
    return classes.count(b" ") + 1 - classes.startswith(b" ") - classes.endswith(b" ")


def first_bad_token(piece: Piece) -> TokenError:
    """The error for the first token of the piece that is not an integer."""
    for match in _TOKEN.finditer(piece.data):
        token = match.group()
        if not _INTEGER.fullmatch(token):
            return TokenError(piece.offset + match.start(), token, "is not an integer",
                              where=piece.where(match.start()))
    raise AssertionError("first_bad_token called on a piece with no bad token")


def tokens(piece: Piece) -> list[bytes]:
    """The piece's tokens, checked (for pieces with integers beyond 64 bits)."""
    count_tokens(piece)
    data = piece.data.replace(b",", b" ") if b"," in piece.data else piece.data
    return data.split()
