"""An echo agent for the A2A conformance kit (a2a-tck), served by `tools/tck/run.py`.

`PYTHONPATH=src:tools/tck python -m penguiflow_a2a.serve agent:build_app --port N`
with `PENGUIFLOW_TCK_URL=http://127.0.0.1:N` (the URL the agent card announces).
The flow streams the first words of a text as chunks, then answers with the
payload as it came (a text stays a text part, data stays a data part).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from penguiflow import Message, Node, NodePolicy, PenguiFlow, create, predicate_router
from penguiflow_a2a import A2AServerAdapter, create_a2a_app

__all__ = ["URL_ENV", "build_app", "build_flow"]

URL_ENV = "PENGUIFLOW_TCK_URL"
RAW = NodePolicy(validate="none")
STEP_S = 0.05
"""Pause between chunks, so that a stream carries events spread over time."""


def long_task_s() -> float:
    """How long a resubscribe task runs: 2 x TCK_STREAMING_TIMEOUT, and a second more.

    The kit asks for that (its docs/SUT_REQUIREMENTS.md) of the task whose messageId
    starts with `test-resubscribe-message-id`; a flow does not see the messageId, so
    the agent goes by the text the kit sends with it.
    """
    return 2 * float(os.environ.get("TCK_STREAMING_TIMEOUT", "2.0")) + 1.0


def _is_long(message: Message) -> bool:
    return isinstance(message.payload, str) and "resubscribe" in message.payload.lower()


async def echo(message: Message, ctx: Any) -> Message:
    """Stream up to three words of a text payload, then answer with the payload."""
    if isinstance(message.payload, str):
        words = message.payload.split()[:3]
        for index, word in enumerate(words):
            await ctx.emit_chunk(parent=message, text=word, done=index == len(words) - 1)
            await asyncio.sleep(STEP_S)
    return message


async def long_echo(message: Message, ctx: Any) -> Message:
    """Stream a chunk a second for `long_task_s()`, then answer with the payload."""
    ticks = max(1, round(long_task_s()))
    for tick in range(ticks):
        await ctx.emit_chunk(parent=message, text=f"tick {tick + 1}", done=tick == ticks - 1)
        await asyncio.sleep(long_task_s() / ticks)
    return message


def build_flow() -> PenguiFlow:
    """Router -> `echo`, or `long_echo` (its own node, so it holds up no other task)."""
    fast = Node(echo, name="echo", policy=RAW)
    slow = Node(long_echo, name="long_echo", policy=RAW)
    router = predicate_router("route", lambda message: slow if _is_long(message) else fast)
    return create(router.to(fast, slow), fast.to(), slow.to())


def build_app() -> Any:
    """The FastAPI app serving the flow (a factory for `penguiflow_a2a.serve`)."""
    adapter = A2AServerAdapter(
        build_flow(),
        agent_card={
            "name": "penguiflow-tck-echo",
            "description": "Echoes what it is sent; the A2A conformance kit's test agent",
            "skills": [{"name": "echo", "description": "answers with the message it got"}],
        },
        agent_url=os.environ.get(URL_ENV, "http://127.0.0.1:8000"),
    )
    return create_a2a_app(adapter)
