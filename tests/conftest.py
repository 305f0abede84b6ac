"""Shared fixtures: flows built in a test are always stopped, tasks never leak."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from penguiflow import Headers, Message, PenguiFlow, RemoteBinding, StoredEvent, create


def make_message(payload: Any = None, **kwargs: Any) -> Message:
    """A `Message` for tenant "acme" (headers are required by the model)."""
    return Message(payload=payload, headers=Headers(tenant="acme"), **kwargs)


@pytest.fixture
async def flows() -> AsyncIterator[Callable[..., PenguiFlow]]:
    """Build flows with `flows(a.to(b), ...)`; each one is stopped after the test."""
    built: list[PenguiFlow] = []

    def build(*adjacencies: Any, **kwargs: Any) -> PenguiFlow:
        flow = create(*adjacencies, **kwargs)
        built.append(flow)
        return flow

    yield build
    for flow in built:
        await flow.stop()


@pytest.fixture
def baseline_tasks() -> Callable[[], set[asyncio.Task[Any]]]:
    """Return a function listing tasks created since the test started (orphans)."""
    before = set(asyncio.all_tasks()) if _loop_running() else set()

    def extra() -> set[asyncio.Task[Any]]:
        current = asyncio.current_task()
        return {t for t in asyncio.all_tasks() if t not in before and t is not current}

    return extra


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class MemoryStore:
    """A minimal in-memory `StateStore` that records what the runtime saves."""

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []
        self.bindings: list[RemoteBinding] = []

    async def save_event(self, event: StoredEvent) -> None:
        self.events.append(event)

    async def load_history(self, trace_id: str) -> Sequence[StoredEvent]:
        return [e for e in self.events if e.trace_id == trace_id]

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        self.bindings.append(binding)

    def remote(self, trace_id: str) -> list[StoredEvent]:
        return [e for e in self.events if e.trace_id == trace_id and e.kind.startswith("remote_")]


# LiteLLM fetches a price list from the internet on import unless told otherwise.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
