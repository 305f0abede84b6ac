"""How a payload travels in A2A message parts, shared by our client and our server.

A `str` is a text part, a JSON object a data part, anything else a data part
`{"value": ...}` marked with part metadata `penguiflow/wrapped`. Reading parts back
gives the single value, or a list when there are several parts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["WRAPPED", "to_parts", "from_parts"]

WRAPPED = "penguiflow/wrapped"


def to_parts(value: Any) -> list[dict[str, Any]]:
    """The parts carrying `value` (which must already be JSON data)."""
    if isinstance(value, str):
        return [{"kind": "text", "text": value}]
    if isinstance(value, dict):
        return [{"kind": "data", "data": value}]
    return [{"kind": "data", "data": {"value": value}, "metadata": {WRAPPED: True}}]


def from_parts(parts: Iterable[Mapping[str, Any]]) -> Any:
    """The value carried by `parts` (`None` for no parts; other kinds kept as dicts)."""
    values: list[Any] = []
    for part in parts:
        kind = part.get("kind")
        if kind == "text":
            values.append(part.get("text"))
        elif kind == "data":
            data = part.get("data")
            wrapped = isinstance(part.get("metadata"), Mapping) and part["metadata"].get(WRAPPED)
            values.append(data.get("value") if wrapped and isinstance(data, Mapping) else data)
        else:
            values.append(dict(part))
    if not values:
        return None
    return values[0] if len(values) == 1 else values
