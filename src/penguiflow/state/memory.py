"""`InMemoryStateStore`: the reference store, kept in process memory.

It follows exactly the rules of the durable stores (JSON only, refused bad data,
single-use hashed resume tokens, expiry), so tests written against it hold for them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._codec import (
    check_id,
    check_page,
    decode_binding,
    decode_event,
    decode_state,
    encode,
    encode_binding,
    encode_event,
    event_key,
    require_mapping,
    token_digest,
)
from .errors import ResumeTokenError
from .protocol import RemoteBinding, StoredEvent

__all__ = ["InMemoryStateStore"]


class InMemoryStateStore:
    """Trace history, remote bindings and planner pauses in memory (lost on exit)."""

    def __init__(
        self, *, ttl_s: float | None = None, time_source: Callable[[], float] = time.time
    ) -> None:
        self._ttl_s = ttl_s
        self._now = time_source
        self._events: dict[str, list[str]] = defaultdict(list)
        self._event_keys: dict[str, set[str]] = defaultdict(set)
        self._bindings: dict[str, dict[str, str]] = defaultdict(dict)
        self._states: dict[str, tuple[str, float | None]] = {}

    async def save_event(self, event: StoredEvent) -> None:
        """Append an event to its trace's history (an identical re-save is ignored)."""
        text = encode_event(event)
        key = event_key(text)
        trace = event.trace_id or ""
        if key in self._event_keys[trace]:
            return
        self._event_keys[trace].add(key)
        self._events[trace].append(text)

    async def load_history(
        self, trace_id: str, *, offset: int = 0, limit: int | None = None
    ) -> Sequence[StoredEvent]:
        """The trace's events in the order they were saved (`offset`/`limit` page them)."""
        offset, limit = check_page(offset, limit)
        check_id(trace_id, "trace_id")
        rows = self._events.get(trace_id, [])
        end = None if limit is None else offset + limit
        return [
            decode_event(text, key=f"{trace_id}#{offset + i}")
            for i, text in enumerate(rows[offset:end])
        ]

    async def save_remote_binding(self, binding: RemoteBinding) -> None:
        """Record (or replace) the binding of a trace to a remote task."""
        self._bindings[binding.trace_id][binding.task_id] = encode_binding(binding)

    async def load_remote_bindings(self, trace_id: str) -> Sequence[RemoteBinding]:
        """The remote tasks bound to a trace."""
        check_id(trace_id, "trace_id")
        rows = self._bindings.get(trace_id, {})
        return [decode_binding(rows[task], key=f"{trace_id}/{task}") for task in sorted(rows)]

    async def delete_trace(self, trace_id: str) -> None:
        """Forget a trace's history and bindings."""
        check_id(trace_id, "trace_id")
        self._events.pop(trace_id, None)
        self._event_keys.pop(trace_id, None)
        self._bindings.pop(trace_id, None)

    async def save_planner_state(
        self, token: str, payload: Mapping[str, Any], *, tenant: str | None = None
    ) -> None:
        """Keep a paused planner's state under the token's digest (re-save replaces)."""
        text = encode(dict(require_mapping(payload)), what="planner state")
        expires = self._now() + self._ttl_s if self._ttl_s is not None else None
        self._states[token_digest(token, tenant)] = (text, expires)

    async def load_planner_state(self, token: str, *, tenant: str | None = None) -> dict[str, Any]:
        """Take the state for a token, once. Raises `ResumeTokenError` otherwise."""
        digest = token_digest(token, tenant)
        entry = self._states.pop(digest, None)
        if entry is None or (entry[1] is not None and self._now() >= entry[1]):
            raise ResumeTokenError()
        return decode_state(entry[0], key=digest[:12])

    async def discard_planner_state(self, token: str, *, tenant: str | None = None) -> bool:
        """Drop a token's state; True if there was one."""
        return self._states.pop(token_digest(token, tenant), None) is not None

    async def close(self) -> None:
        """Nothing to release (present for symmetry with the durable stores)."""
