"""Controller-loop semantics: what happens to `WM` and `FinalAnswer` results."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..types import WM, FinalAnswer, Message

__all__ = [
    "BUDGET_EXCEEDED_TEXT",
    "DEADLINE_EXCEEDED_TEXT",
    "TOKEN_BUDGET_EXCEEDED_TEXT",
    "Routing",
    "route_result",
]

BUDGET_EXCEEDED_TEXT = "Hop budget exhausted"
DEADLINE_EXCEEDED_TEXT = "Deadline exceeded"
TOKEN_BUDGET_EXCEEDED_TEXT = "Token budget exhausted"


@dataclass(slots=True)
class Routing:
    """Where a node result goes.

    `to_rookery`: the result is terminal and goes to Rookery (processing ends).
    `self_loop`: the result goes back to the node through its self-edge.
    `snapshot`: a copy is also delivered to Rookery as a progress update.
    """

    message: Any
    to_rookery: bool = False
    self_loop: bool = False
    snapshot: bool = False


def _with_answer(result: Message, text: str) -> Message:
    return result.model_copy(update={"payload": FinalAnswer(text=text)})


def route_result(result: Any, incoming: Any) -> Routing | None:
    """Classify a node result; `None` means "ordinary result, emit to all successors"."""
    if not isinstance(result, Message):
        return None
    payload = result.payload
    if isinstance(payload, FinalAnswer):
        return Routing(result, to_rookery=True)
    if not isinstance(payload, WM):
        return None
    deadline = result.deadline_s
    if deadline is not None and time.time() > deadline:
        return Routing(_with_answer(result, DEADLINE_EXCEEDED_TEXT), to_rookery=True)
    if payload.budget_tokens is not None and payload.tokens_used >= payload.budget_tokens:
        return Routing(_with_answer(result, TOKEN_BUDGET_EXCEEDED_TEXT), to_rookery=True)
    incoming_hops: int | None = None
    if isinstance(incoming, Message) and isinstance(incoming.payload, WM):
        incoming_hops = incoming.payload.hops
    current = payload.hops
    next_hops = (
        incoming_hops + 1 if incoming_hops is not None and current <= incoming_hops else current
    )
    if payload.budget_hops is not None and next_hops >= payload.budget_hops:
        return Routing(_with_answer(result, BUDGET_EXCEEDED_TEXT), to_rookery=True)
    prepared = result
    if next_hops != current:
        prepared = result.model_copy(
            update={"payload": payload.model_copy(update={"hops": next_hops})}
        )
    snapshot = payload.budget_hops is None and payload.budget_tokens is None
    return Routing(prepared, self_loop=True, snapshot=snapshot)
