"""Local repair of near-JSON LLM replies (code fences, prose around JSON, trailing commas).

Only the syntax is repaired; the result is still validated against `PlannerAction`
and tool arguments against their models, so a repaired reply can never smuggle
invalid arguments into a tool. Truncated JSON is never completed: guessing the
missing part could change the arguments, so the LLM is asked again instead.
"""

from __future__ import annotations

import re

__all__ = ["extract_json_object"]

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)


def extract_json_object(text: str) -> str | None:
    """The repaired JSON object text inside `text`, or `None` if there is none."""
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    start = text.find("{")
    if start < 0:
        return None
    end = _matching_brace(text, start)
    if end is None:
        return None
    return _drop_trailing_commas(text[start : end + 1])


def _matching_brace(text: str, start: int) -> int | None:
    depth = 0
    in_string = False
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def _drop_trailing_commas(text: str) -> str:
    out: list[str] = []
    in_string = False
    escaped = False
    pending_comma: int | None = None
    for char in text:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char in "}]" and pending_comma is not None:
            del out[pending_comma]
            pending_comma = None
        elif char == ",":
            pending_comma = len(out)
        elif not char.isspace():
            pending_comma = None
        if char == '"':
            in_string = True
            pending_comma = None
        out.append(char)
    return "".join(out)
