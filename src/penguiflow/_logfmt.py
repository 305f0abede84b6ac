"""Log messages a person can read and a program can still match by event name.

Usage::

    logger.info(LogLine("node_success"), {"node": "triage", "latency_ms": 1.23}, extra=payload)

A handler with a plain `logging.Formatter` prints ``node_success node=triage
latency_ms=1.2``, while `record.msg == record.getMessage() == "node_success"` stays
true, so code and tests that match records by event name keep working, and JSON
handlers (which serialise `getMessage()` as a string) keep writing the bare name.

How: `LogLine` is a `str` equal to the event name. `LogRecord.getMessage()` computes
``str(msg) % args``; `LogLine.__str__` returns the `LogLine` itself and its `__mod__`
returns a `RenderedLine`: a `str` that is still equal to the event name but whose
`str()`/`format()` (what `%(message)s`, `{message}` and `$message` use) is the
whole line. The fields are the record's lazy `%`-args: nothing is rendered unless a
handler formats the record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .errors import exception_repr, exception_text

__all__ = ["MAX_VALUE_CHARS", "LogLine", "RenderedLine", "render_line", "render_value"]

MAX_VALUE_CHARS = 80
"""Longer values (thoughts, queries, errors) are cut to this many characters, with `…`."""

# A value containing one of these (or an empty one) is written as a JSON string.
_NEEDS_QUOTES = re.compile(r'[\s"=\\]')
# `scheme://user:password@host`: the credentials part of a URL, hidden in the text.
_URL_USERINFO = re.compile(r"://[^/\s@]*@")


class LogLine(str):
    """A log message equal to its event name; `%`-formatted with a mapping of fields it
    renders as ``name key=value ...`` (see the module docstring).

    Pass the fields as the single `%`-argument: ``logger.info(LogLine(name), fields)``.
    """

    __slots__ = ()

    def __str__(self) -> str:
        # `getMessage()` calls `str(msg)` before applying the args: stay a `LogLine`.
        return self

    def __mod__(self, fields: Any) -> str:
        name = str.__str__(self)
        text = render_line(name, fields) if isinstance(fields, Mapping) else name
        return RenderedLine(name, text)

    def __reduce__(self) -> tuple[type[str], tuple[str]]:
        # A pickled record (sent to another process) carries a plain event name.
        return (str, (str.__str__(self),))


class RenderedLine(str):
    """The result of `LogLine % fields`: equal to the event name, printed as the line."""

    text: str

    def __new__(cls, name: str, text: str) -> RenderedLine:
        """Build the message `name` that prints as `text`."""
        line = super().__new__(cls, name)
        line.text = text
        return line

    def __str__(self) -> str:
        return self.text

    def __format__(self, format_spec: str) -> str:
        return format(self.text, format_spec)

    def __reduce__(self) -> tuple[type[str], tuple[str]]:
        # Pickled (e.g. by `SocketHandler`), the message travels as the readable text.
        return (str, (self.text,))


def render_line(name: str, fields: Mapping[str, Any]) -> str:
    """``name key=value ...`` for the fields that are not `None`, in their order."""
    parts = [name]
    for key, value in fields.items():
        if value is not None:
            parts.append(f"{key}={render_value(key, value)}")
    return " ".join(parts)


def render_value(key: str, value: Any) -> str:
    """One value as it appears in a line: numbers short, text cut and quoted if needed.

    `*_ms` floats get one decimal, other floats six significant digits (timestamps
    three decimals); an exception reads ``Type: message``; text longer
    than `MAX_VALUE_CHARS` is cut with `…`; URL credentials are replaced by `***`;
    text that is empty or holds spaces, quotes or `=` becomes a JSON string (so a
    line stays one line).
    """
    if isinstance(value, bool | int):
        return str(value)
    if isinstance(value, float):
        if key.endswith("_ms"):
            return f"{value:.1f}"
        # Large values are timestamps (`deadline_s`): keep every second.
        return f"{value:.3f}" if abs(value) >= 1e6 else f"{value:.6g}"
    if isinstance(value, BaseException):
        message = exception_text(value)
        text = f"{type(value).__name__}: {message}" if message else type(value).__name__
    elif isinstance(value, str):
        text = value
    else:
        text = exception_repr(value)
    if "://" in text:
        text = _URL_USERINFO.sub("://***@", text)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 1] + "…"
    if not text or _NEEDS_QUOTES.search(text):
        return json.dumps(text, ensure_ascii=False)
    return text
