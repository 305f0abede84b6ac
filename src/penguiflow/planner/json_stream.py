"""Reading a JSON object while it is still being generated.

`JsonStreamScanner` is fed the text of a streamed reply piece by piece and reports
what it can already tell: the decoded text of string values as it arrives, each
scalar when it ends, and where containers begin, each with the path of the value
(`("args", "answer")`, `("plan", 0, "node")`). It never raises on bad input: a
reply that stops being JSON just stops being reported (`failed`), and the planner's
own validation deals with the full text at the end.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

__all__ = ["JsonPiece", "JsonStreamScanner", "Path"]

Path = tuple[str | int, ...]

_WS = frozenset(" \t\r\n")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_SCALAR_START = frozenset("-0123456789tfn")
_SCALAR_END = frozenset(",}]") | _WS

# What a container frame waits for next.
_KEY = 0  # a key, or the end of an empty object
_COLON = 1
_VALUE = 2  # a value (or, first in an array, the end of an empty one)
_NEXT = 3  # a comma or the end of the container


class JsonPiece(NamedTuple):
    """Something the scanner can tell: a `text` piece of the string at `path`, a
    `scalar` that ended (its JSON text, such as `null` or `12`), or the `begin` of an
    object (`{`) or array (`[`)."""

    kind: Literal["text", "scalar", "begin"]
    path: Path
    value: str


class _Frame:
    __slots__ = ("expect", "is_object", "key")

    def __init__(self, is_object: bool) -> None:
        self.is_object = is_object
        self.expect = _KEY if is_object else _VALUE
        self.key: str | int = "" if is_object else 0


class JsonStreamScanner:
    """An incremental reader of one JSON object (text before its `{` is skipped, so a
    fenced reply works too). Call `feed()` with each piece of text, in order."""

    __slots__ = (
        "_escape",
        "_frames",
        "_high",
        "_in_string",
        "_is_key",
        "_key",
        "_scalar",
        "done",
        "failed",
    )

    def __init__(self) -> None:
        self._frames: list[_Frame] = []
        self._in_string = False
        self._is_key = False
        self._key: list[str] = []  # the key being read
        self._escape: str | None = None  # "\\", or "u" and the hex digits read so far
        self._high: str | None = None  # a high surrogate waiting for its low half
        self._scalar: str | None = None
        self.done = False
        """The object has ended: the rest is ignored."""
        self.failed = False
        """The text stopped being JSON: nothing more is reported."""

    def path(self) -> Path:
        """The path of the value being read."""
        return tuple(frame.key for frame in self._frames)

    def feed(self, text: str) -> list[JsonPiece]:
        """Read `text`; what it made known, in order."""
        out: list[JsonPiece] = []
        if self.done or self.failed:
            return out
        i, n = 0, len(text)
        while i < n:
            if self._in_string:
                i = self._read_string(text, i, out)
                if self.failed:
                    return out
                continue
            ch = text[i]
            if self._scalar is not None:
                if ch not in _SCALAR_END:
                    self._scalar += ch
                    i += 1
                    continue
                out.append(JsonPiece("scalar", self.path(), self._scalar))
                self._scalar = None
                self._value_done()
            if not self._frames:
                if ch == "{":
                    self._frames.append(_Frame(True))
                    out.append(JsonPiece("begin", (), "{"))
                i += 1
                continue
            if ch not in _WS:
                self._structural(ch, out)
                if self.done or self.failed:
                    return out
            i += 1
        return out

    def _structural(self, ch: str, out: list[JsonPiece]) -> None:
        frame = self._frames[-1]
        expect = frame.expect
        if expect == _KEY:
            if ch == '"':
                self._in_string, self._is_key = True, True
                self._key.clear()
            elif ch == "}":
                self._close()
            else:
                self.failed = True
        elif expect == _COLON:
            if ch == ":":
                frame.expect = _VALUE
            else:
                self.failed = True
        elif expect == _VALUE:
            if ch == "]" and not frame.is_object and frame.key == 0:
                self._close()
            else:
                self._begin_value(ch, out)
        elif ch == ",":
            if frame.is_object:
                frame.expect = _KEY
            else:
                frame.key = int(frame.key) + 1
                frame.expect = _VALUE
        elif ch == ("}" if frame.is_object else "]"):
            self._close()
        else:
            self.failed = True

    def _begin_value(self, ch: str, out: list[JsonPiece]) -> None:
        if ch == '"':
            self._in_string, self._is_key = True, False
        elif ch == "{" or ch == "[":
            out.append(JsonPiece("begin", self.path(), ch))
            self._frames.append(_Frame(ch == "{"))
        elif ch in _SCALAR_START:
            self._scalar = ch
        else:
            self.failed = True

    def _value_done(self) -> None:
        self._frames[-1].expect = _NEXT

    def _close(self) -> None:
        self._frames.pop()
        if self._frames:
            self._value_done()
        else:
            self.done = True

    def _read_string(self, text: str, i: int, out: list[JsonPiece]) -> int:
        """Read string content from `text[i:]`; the index after what was read."""
        n = len(text)
        pieces: list[str] = []
        while i < n:
            if self._escape is not None:
                i = self._read_escape(text, i, pieces)
                continue
            # The plain run up to the next quote or backslash, in one slice.
            j = i
            while j < n and text[j] != '"' and text[j] != "\\":
                j += 1
            if j > i:
                self._flush_high(pieces)
                pieces.append(text[i:j])
            if j == n:
                i = n
                break
            if text[j] == "\\":
                self._escape = "\\"
                i = j + 1
                continue
            # The closing quote.
            self._flush_high(pieces)
            self._emit(pieces, out)
            pieces = []
            self._in_string = False
            frame = self._frames[-1]
            if self._is_key:
                frame.key = "".join(self._key)
                frame.expect = _COLON
            else:
                self._value_done()
            return j + 1
        self._emit(pieces, out)
        return i

    def _read_escape(self, text: str, i: int, pieces: list[str]) -> int:
        escape = self._escape or ""
        ch = text[i]
        if escape == "\\":
            if ch == "u":
                self._escape = "u"
            elif ch in _ESCAPES:
                self._escape = None
                self._flush_high(pieces)
                pieces.append(_ESCAPES[ch])
            else:
                self._escape = None
                self.failed = True
                self._in_string = False
            return i + 1
        # "u" followed by up to four hex digits.
        escape += ch
        if len(escape) < 5:
            self._escape = escape
            return i + 1
        self._escape = None
        try:
            code = int(escape[1:], 16)
        except ValueError:
            self.failed = True
            self._in_string = False
            return i + 1
        char = chr(code)
        if 0xDC00 <= code <= 0xDFFF and self._high is not None:
            high = ord(self._high)
            self._high = None
            pieces.append(chr(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00)))
        elif 0xD800 <= code <= 0xDBFF:
            self._flush_high(pieces)
            self._high = char
        else:
            self._flush_high(pieces)
            pieces.append(char)
        return i + 1

    def _flush_high(self, pieces: list[str]) -> None:
        """A high surrogate not followed by its low half stands alone (as `json` keeps it)."""
        if self._high is not None:
            pieces.append(self._high)
            self._high = None

    def _emit(self, pieces: list[str], out: list[JsonPiece]) -> None:
        if not pieces:
            return
        text = "".join(pieces)
        if self._is_key:
            self._key.append(text)
        else:
            out.append(JsonPiece("text", self.path(), text))
