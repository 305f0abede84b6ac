"""The flow the worker tests run in each process: double (taking a little while, so a
worker killed mid-run is usually holding a message), then add one."""

from __future__ import annotations

import asyncio
from typing import Any

from penguiflow import Message, Node, NodePolicy, PenguiFlow, create

WORK_S = 0.02


async def double(message: Message, ctx: Any) -> Message:
    await asyncio.sleep(WORK_S)
    return message.model_copy(update={"payload": message.payload * 2})


async def add_one(message: Message, ctx: Any) -> Message:
    return message.model_copy(update={"payload": message.payload + 1})


def build_flow() -> PenguiFlow:
    first = Node(double, name="double", policy=NodePolicy(validate="none"))
    second = Node(add_one, name="add_one", policy=NodePolicy(validate="none"))
    return create(first.to(second), second.to())
