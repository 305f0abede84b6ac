"""Message envelope and controller models carried through a flow."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Headers", "Message", "StreamChunk", "PlanStep", "Thought", "WM", "FinalAnswer"]

# Schemas are built on first use rather than at import, which keeps `import penguiflow` fast.
_DEFERRED = ConfigDict(defer_build=True)


def _new_trace_id() -> str:
    return uuid.uuid4().hex


class Headers(BaseModel):
    """Routing metadata attached to every message."""

    model_config = _DEFERRED

    tenant: str
    topic: str | None = None
    priority: int = 0


class Message(BaseModel):
    """The envelope that flows between nodes: payload plus trace identity and deadline."""

    model_config = _DEFERRED

    payload: Any
    headers: Headers
    trace_id: str = Field(default_factory=_new_trace_id)
    ts: float = Field(default_factory=time.time)
    deadline_s: float | None = None
    """Absolute wall-clock Unix timestamp after which the message is stale."""
    meta: dict[str, Any] = Field(default_factory=dict)


class StreamChunk(BaseModel):
    """One piece of a streamed response; `seq` numbers chunks within `stream_id`."""

    model_config = _DEFERRED

    stream_id: str
    seq: int
    text: str
    done: bool = False
    meta: dict[str, Any] = Field(default_factory=dict)


class PlanStep(BaseModel):
    """A planned action (data container only)."""

    model_config = _DEFERRED

    kind: Literal["retrieve", "web", "sql", "summarize", "route", "stop"]
    args: dict[str, Any] = Field(default_factory=dict)
    max_concurrency: int = 1


class Thought(BaseModel):
    """A list of plan steps with a rationale (data container only)."""

    model_config = _DEFERRED

    steps: list[PlanStep]
    rationale: str
    done: bool = False


class WM(BaseModel):
    """Working memory of a controller loop; `hops` is advanced by the runtime."""

    model_config = _DEFERRED

    query: str
    facts: list[Any] = Field(default_factory=list)
    hops: int = 0
    budget_hops: int | None = 8
    tokens_used: int = 0
    budget_tokens: int | None = None
    confidence: float = 0.0


class FinalAnswer(BaseModel):
    """A terminal answer; a `Message` carrying one goes straight to Rookery."""

    model_config = _DEFERRED

    text: str
    citations: list[str] = Field(default_factory=list)
