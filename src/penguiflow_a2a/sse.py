"""Server-sent event frames for the spec's `/message/stream` route."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic_core import to_jsonable_python

from penguiflow.types import StreamChunk

__all__ = ["event_frame", "chunk_frame", "comment_frame", "dumps"]


def dumps(data: Any) -> str:
    """JSON with non-ASCII kept and default separators; dates, models etc. encoded."""
    return json.dumps(data, ensure_ascii=False, default=_fallback)


def _fallback(value: Any) -> Any:
    try:
        return to_jsonable_python(value)
    except Exception:  # an object pydantic cannot encode either: its repr
        return repr(value)


def event_frame(event: str, data: Mapping[str, Any]) -> bytes:
    """`event: <name>` and one `data:` line of JSON."""
    return f"event: {event}\ndata: {dumps(dict(data))}\n\n".encode()


def chunk_frame(chunk: StreamChunk, *, task_id: str, context_id: str) -> bytes:
    """A chunk: `event: chunk|done`, `id: <seq>`, the text, then the meta as JSON.

    Multi-line text is sent as one `data:` line per text line (an SSE client joins
    them with newlines), so the text can no longer break the framing; the meta is
    always the last `data:` line.
    """
    meta = dict(chunk.meta)
    meta.setdefault("taskId", task_id)
    meta.setdefault("contextId", context_id)
    name = "done" if chunk.done else "chunk"
    lines = [f"event: {name}", f"id: {chunk.seq}"]
    lines.extend(f"data: {line}" for line in chunk.text.split("\n"))
    lines.append(f"data: {dumps(meta)}")
    return ("\n".join(lines) + "\n\n").encode()


def comment_frame(text: str = "keep-alive") -> bytes:
    """An SSE comment line, ignored by clients; keeps idle connections open."""
    return f": {text}\n\n".encode()
