"""A planner's streamed answer as a flow's stream chunks: `forward_answer`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from ..streaming import ChunkEmitter
from ..types import Message
from .answer_stream import STREAM_CHUNK
from .models import PlannerEvent

if TYPE_CHECKING:
    from .react import ReactPlanner

__all__ = ["forward_answer"]

logger = logging.getLogger("penguiflow.planner")


@asynccontextmanager
async def forward_answer(
    planner: ReactPlanner,
    emitter: ChunkEmitter,
    parent: Message,
    *,
    stream_id: str | None = None,
) -> AsyncIterator[None]:
    """While the block runs, send the planner's `llm_stream_chunk` events as stream
    chunks of `parent`'s trace, through `emitter` (a node's `ctx`, or the flow).

    Each chunk keeps its event's numbering (`seq` is the event's `index`, and the
    last chunk of a streamed answer is `done`); its `meta` holds the `stream` number,
    and `discarded: True` on the end of an answer the planner did not take. The
    chunks are sent in order by a task of their own, so a slow consumer never slows
    the planner; leaving the block waits until every chunk is sent (or stops sending
    when the block fails). A failure to send is raised when the block ends.

    Usage, in a node::

        async def answer(message: Message, ctx: Context) -> Message:
            async with forward_answer(planner, ctx, message):
                finish = await planner.run(message.payload)
            return message.model_copy(update={"payload": finish.payload})
    """
    queue: asyncio.Queue[PlannerEvent | None] = asyncio.Queue()

    def hook(event: PlannerEvent) -> None:
        if event.event_type == STREAM_CHUNK:
            queue.put_nowait(event)

    async def pump() -> None:
        while (event := await queue.get()) is not None:
            extra = event.extra
            meta: dict[str, Any] = {"stream": extra.get("stream")}
            if extra.get("discarded"):
                meta["discarded"] = True
            await emitter.emit_chunk(
                parent=parent,
                text=str(extra.get("text", "")),
                stream_id=stream_id,
                seq=int(extra.get("index", 0)),
                done=bool(extra.get("done")),
                meta=meta,
            )

    hooks = planner.hooks.event
    hooks.append(hook)
    sender = asyncio.create_task(pump(), name="penguiflow-forward-answer")
    try:
        yield
    except BaseException:
        # The block's error is the one raised: stop sending, and let the sender end.
        sender.cancel()
        await asyncio.wait([sender])
        if not sender.cancelled() and sender.exception() is not None:
            logger.warning("forward_answer: sending a chunk failed", exc_info=sender.exception())
        raise
    finally:
        hooks.remove(hook)
    queue.put_nowait(None)
    await sender
