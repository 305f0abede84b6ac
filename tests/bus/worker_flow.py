"""The flow the worker tests run in each process: double, then add one."""

from __future__ import annotations

from typing import Any

from penguiflow import Message, Node, NodePolicy, PenguiFlow, create


async def double(message: Message, ctx: Any) -> Message:
    return message.model_copy(update={"payload": message.payload * 2})


async def add_one(message: Message, ctx: Any) -> Message:
    return message.model_copy(update={"payload": message.payload + 1})


def build_flow() -> PenguiFlow:
    first = Node(double, name="double", policy=NodePolicy(validate="none"))
    second = Node(add_one, name="add_one", policy=NodePolicy(validate="none"))
    return create(first.to(second), second.to())
