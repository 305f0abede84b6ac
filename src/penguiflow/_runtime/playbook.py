"""Subflows ("playbooks") called from a node for one message."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..types import Message
from .traces import TraceCancelled

if TYPE_CHECKING:
    from ..registry import ModelRegistry
    from .flow import PenguiFlow

__all__ = ["PlaybookFactory", "call_playbook"]

PlaybookFactory = Callable[[], "tuple[PenguiFlow, ModelRegistry | None]"]


async def _mirror_cancellation(event: asyncio.Event, flow: PenguiFlow, trace_id: str) -> None:
    await event.wait()
    with contextlib.suppress(RuntimeError):  # the subflow may already have stopped
        await flow.cancel(trace_id)


async def call_playbook(
    playbook: PlaybookFactory,
    parent_msg: Message,
    timeout: float | None = None,
    *,
    runtime: PenguiFlow | None = None,
) -> Any:
    """Run a fresh subflow for `parent_msg` and return its first result's payload.

    The subflow inherits the message itself (trace id, headers, deadline, meta).
    Cancelling the parent trace on `runtime` cancels the subflow's trace. The
    subflow is always stopped afterwards. `timeout` bounds the wait for the result
    (`TimeoutError`).
    """
    flow, registry = playbook()
    flow.run(registry=registry)
    trace_id = getattr(parent_msg, "trace_id", None)
    mirror: asyncio.Task[None] | None = None
    pre_cancelled = False
    if runtime is not None and trace_id is not None:
        event = runtime.ensure_trace_event(trace_id)
        if event.is_set():
            pre_cancelled = True
        else:
            mirror = asyncio.get_running_loop().create_task(
                _mirror_cancellation(event, flow, trace_id)
            )
    try:
        if pre_cancelled:
            raise TraceCancelled(trace_id)
        try:
            await flow.emit(parent_msg)
            if timeout is None:
                result = await flow.fetch()
            else:
                result = await asyncio.wait_for(flow.fetch(), timeout)
        except TraceCancelled:
            if trace_id is not None:
                with contextlib.suppress(RuntimeError):
                    await flow.cancel(trace_id)
            raise
        except asyncio.CancelledError:
            if trace_id is not None:
                with contextlib.suppress(RuntimeError):
                    await flow.cancel(trace_id)
            raise
        return result.payload if isinstance(result, Message) else result
    finally:
        if mirror is not None:
            mirror.cancel()
            await asyncio.gather(mirror, return_exceptions=True)
        await asyncio.shield(flow.stop())
