"""Streaming helpers: render `StreamChunk`s for SSE/WebSocket and pump streams through flows."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .errors import InvalidArgumentError
from .types import Message, StreamChunk

if TYPE_CHECKING:
    from .core import PenguiFlow
    from .node import Node

__all__ = ["format_sse_event", "chunk_to_ws_json", "stream_flow", "emit_stream_events"]

EventAdapter = Callable[[Any], tuple[str, bool, dict[str, Any]]]
"""Turns one source item into `(text, done, meta)` for `emit_stream_events`."""

# SSE treats CRLF, lone CR and lone LF alike as line terminators.
_SSE_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class ChunkEmitter(Protocol):
    """Anything that can stream chunks: a node's `Context` or a `PenguiFlow`."""

    async def emit_chunk(
        self,
        *,
        parent: Message,
        text: str,
        stream_id: str | None = None,
        seq: int | None = None,
        done: bool = False,
        meta: dict[str, Any] | None = None,
        to: Node | Sequence[Node] | None = None,
    ) -> StreamChunk: ...


def _require_chunk(chunk: Any, caller: str) -> StreamChunk:
    if not isinstance(chunk, StreamChunk):
        raise TypeError(
            f"{caller} expects a penguiflow.types.StreamChunk, got {type(chunk).__name__}"
        )
    return chunk


def format_sse_event(
    chunk: StreamChunk, *, event_name: str | None = None, retry_ms: int | None = None
) -> str:
    """Render a chunk as one Server-Sent Events frame (ends with a blank line).

    The event name is `event_name`, else `"done"` for a final chunk, else `"chunk"`;
    the id is the chunk's `seq`. The text goes into one `data:` line verbatim, as in
    the reference release: split multi-line text into several chunks, or use
    `chunk_to_ws_json`, if a line break could end the frame early. A non-empty
    `meta` follows as an extra JSON `data:` line. Raises `TypeError` for a
    non-chunk and `ValueError` if `event_name` contains a line break.
    """
    _require_chunk(chunk, "format_sse_event")
    if event_name and _SSE_LINE_BREAK.search(event_name):
        raise InvalidArgumentError(f"SSE event_name must not contain line breaks: {event_name!r}")
    name = event_name or ("done" if chunk.done else "chunk")
    lines = [f"event: {name}", f"id: {chunk.seq}"]
    lines.append(f"data: {chunk.text}")
    if chunk.meta:
        lines.append(f"data: {json.dumps(chunk.meta, ensure_ascii=False)}")
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    return "\n".join(lines) + "\n\n"


def chunk_to_ws_json(chunk: StreamChunk, *, extra: dict[str, Any] | None = None) -> str:
    """Serialise a chunk as a JSON text frame for WebSockets.

    Keys are `stream_id`, `seq`, `text`, `done`, `meta`, then `extra` merged on top
    (extra keys may override the chunk's). Raises `TypeError` for a non-chunk.
    """
    _require_chunk(chunk, "chunk_to_ws_json")
    data: dict[str, Any] = {
        "stream_id": chunk.stream_id,
        "seq": chunk.seq,
        "text": chunk.text,
        "done": chunk.done,
        "meta": chunk.meta,
    }
    if extra:
        data.update(extra)
    return json.dumps(data, ensure_ascii=False)


async def stream_flow(
    flow: PenguiFlow,
    parent_msg: Message,
    *,
    to: Node | Sequence[Node] | None = None,
    timeout: float | None = None,
    include_final: bool = False,
) -> AsyncIterator[Any]:
    """Emit `parent_msg` into a running flow and yield what reaches Rookery.

    Each `StreamChunk` payload is yielded; the generator stops after the first
    `done` chunk (unless `include_final`, which keeps reading) and after yielding
    the first non-chunk payload. `timeout` bounds each individual fetch and
    `TimeoutError` propagates. Results of other traces are not filtered out. The
    caller runs and stops the flow.
    """
    await flow.emit(parent_msg, to=to)
    while True:
        if timeout is None:
            result = await flow.fetch()
        else:
            result = await asyncio.wait_for(flow.fetch(), timeout)
        payload = getattr(result, "payload", result)
        if isinstance(payload, StreamChunk):
            yield payload
            if payload.done and not include_final:
                return
            continue
        yield payload
        return


def _default_adapter(item: Any) -> tuple[str, bool, dict[str, Any]]:
    return str(item), False, {}


async def emit_stream_events(
    source: AsyncIterable[Any],
    ctx: ChunkEmitter,
    parent_msg: Message,
    *,
    adapter: EventAdapter | None = None,
    to: Node | Sequence[Node] | None = None,
    final_meta: dict[str, Any] | None = None,
) -> None:
    """Forward every item of `source` as a chunk of `parent_msg`'s stream.

    `adapter` maps an item to `(text, done, meta)` (default: `(str(item), False, {})`).
    The whole source is consumed, even past a `done` chunk. If no chunk was `done`,
    a final empty chunk with `done=True` and `final_meta` closes the stream.
    """
    if not callable(getattr(ctx, "emit_chunk", None)):
        raise TypeError(
            f"emit_stream_events needs a Context or PenguiFlow with emit_chunk, "
            f"got {type(ctx).__name__}"
        )
    convert = adapter or _default_adapter
    finished = False
    async for item in source:
        text, done, meta = convert(item)
        await ctx.emit_chunk(parent=parent_msg, text=text, done=done, meta=meta, to=to)
        finished = finished or done
    if not finished:
        await ctx.emit_chunk(parent=parent_msg, text="", done=True, meta=final_meta or {}, to=to)
