"""Spans: what a recorded run is made of (the model that tracing and the stores share).

A *run* is one planner run (with its resumes) or one flow trace. It is a tree of
spans: the root (`kind="run"` or `kind="trace"`) and its descendants, all sharing
the run's `run_id`. A span is JSON data once finished (`to_dict`/`from_dict`);
stores keep spans and a summary of each run (`RunSummary`), taken from its root.

Kinds:

* planner: `run` → `step` → `llm` (an LLM call), `tool` (a tool call, also one
  branch of a parallel plan, `attributes["branch"]` its index), `join`, `summary`
  (history condensation), `pause`, `resume`;
* flow: `trace` → `node` (one span per attempt of a node invocation).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .errors import InvalidDataError

__all__ = [
    "RUN_KINDS",
    "Span",
    "SpanKind",
    "SpanStatus",
    "RunSummary",
    "expand_messages",
    "hex_id",
    "new_id",
]

SpanKind = Literal[
    "run", "step", "llm", "tool", "join", "summary", "pause", "resume", "trace", "node"
]
SpanStatus = Literal["running", "ok", "error", "paused", "cancelled"]

#: The kinds a root span (a run) has.
RUN_KINDS: frozenset[str] = frozenset({"run", "trace"})

_STATUSES: frozenset[str] = frozenset({"running", "ok", "error", "paused", "cancelled"})


def new_id() -> str:
    """A fresh span or run id: 128 random bits as 32 lowercase hex characters.

    Ids name spans, they guard nothing: the fast generator (seeded from the OS) is
    enough, at a third of the cost of `secrets`.
    """
    return f"{_bits(128):032x}"


_random = random.Random()  # seeded from os.urandom
_bits = _random.getrandbits
# A forked child must not repeat its parent's ids.
os.register_at_fork(after_in_child=_random.seed)

_HEX = re.compile(r"[0-9a-f]+")


def hex_id(value: str, width: int) -> str:
    """`value` as a W3C/OTLP id of `width` hex characters (32 for a trace, 16 for a span).

    Our ids are hex already and are cut to width (dashes of a UUID dropped);
    anything else (a flow trace id of the user's choosing) is hashed, so the same
    run always maps to the same id wherever it is exported or propagated.
    """
    lowered = value.lower().replace("-", "")
    if len(lowered) >= width and _HEX.fullmatch(lowered[:width]):
        return lowered[:width]
    return hashlib.sha256(value.encode()).hexdigest()[:width]


@dataclass(slots=True)
class Span:
    """One timed piece of a run.

    `start` and `end` are wall-clock seconds (`time.time()`); `end` is `None` while
    the span runs. `attributes` hold small scalar facts (model, tokens, cost, tool
    name, step number); `content` holds captured content (LLM messages and reply,
    tool arguments and result), already redacted and capped by the recorder.
    """

    run_id: str
    span_id: str
    parent_id: str | None
    kind: str
    name: str
    start: float
    end: float | None = None
    status: str = "running"
    error_type: str | None = None
    error_message: str | None = None
    attempt: int = 1
    attributes: dict[str, Any] = field(default_factory=dict)
    content: dict[str, Any] = field(default_factory=dict)

    @property
    def is_root(self) -> bool:
        """Whether this span is its run's root."""
        return self.parent_id is None

    @property
    def duration_ms(self) -> float | None:
        """Milliseconds from start to end (`None` while running)."""
        if self.end is None:
            return None
        return (self.end - self.start) * 1000

    def to_dict(self) -> dict[str, Any]:
        """The span as JSON data (`from_dict` reads it back)."""
        return {
            "run_id": self.run_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "kind": self.kind,
            "name": self.name,
            "start": self.start,
            "end": self.end,
            "status": self.status,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "attempt": self.attempt,
            "attributes": dict(self.attributes),
            "content": dict(self.content),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Span:
        """Rebuild a span from `to_dict()` output.

        Raises `InvalidDataError` (a `ValueError`) naming the field that is missing or
        of the wrong type.
        """

        def need(key: str, kind: type | tuple[type, ...]) -> Any:
            value = data.get(key)
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                raise InvalidDataError(f"span field {key!r} must be {_kind_name(kind)}")
            return value

        def maybe(key: str, kind: type | tuple[type, ...]) -> Any:
            value = data.get(key)
            if value is None:
                return None
            return need(key, kind)

        status = need("status", str)
        if status not in _STATUSES:
            raise InvalidDataError(f"span field 'status' must be one of {sorted(_STATUSES)}")
        return cls(
            run_id=need("run_id", str),
            span_id=need("span_id", str),
            parent_id=maybe("parent_id", str),
            kind=need("kind", str),
            name=need("name", str),
            start=float(need("start", (int, float))),
            end=None if data.get("end") is None else float(need("end", (int, float))),
            status=status,
            error_type=maybe("error_type", str),
            error_message=maybe("error_message", str),
            attempt=int(data.get("attempt", 1) or 1),
            attributes=dict(data.get("attributes") or {}),
            content=dict(data.get("content") or {}),
        )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__


@dataclass(slots=True)
class RunSummary:
    """One line of a run list: a run's root span, and how many spans the run has.

    `attributes` are the root's: for planner runs `query`, `answer`, `reason` and
    the usage totals (`llm_calls`, `prompt_tokens`, `completion_tokens`,
    `cost_usd`, `tool_calls`, `wall_ms`).
    """

    run_id: str
    kind: str
    name: str
    status: str
    start: float
    end: float | None
    span_count: int
    error_type: str | None = None
    error_message: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_root(cls, root: Span, span_count: int) -> RunSummary:
        """The summary of the run whose root is `root`."""
        return cls(
            run_id=root.run_id,
            kind=root.kind,
            name=root.name,
            status=root.status,
            start=root.start,
            end=root.end,
            span_count=span_count,
            error_type=root.error_type,
            error_message=root.error_message,
            attributes=dict(root.attributes),
        )

    def search_text(self) -> str:
        """The lowercased text a run-list search matches against."""
        parts = [self.run_id, self.name, self.status, self.error_message or ""]
        for key in ("query", "answer", "reason"):
            value = self.attributes.get(key)
            if value is not None:
                parts.append(str(value))
        return "\n".join(parts).lower()

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON data."""
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "name": self.name,
            "status": self.status,
            "start": self.start,
            "end": self.end,
            "span_count": self.span_count,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "attributes": dict(self.attributes),
        }


def expand_messages(spans: Sequence[Span]) -> list[Span]:
    """`spans` with every LLM call's full message list.

    A recorder stores each LLM call's prompt as the messages that are new since the
    previous call of the same planner run (`content["messages"]`), plus the id of
    that call (`content["messages_from"]`) and how many of its messages come first
    (`content["messages_kept"]`): a run's prompts grow step by step, and storing
    each in full would cost the square of the run's length. This rebuilds them.
    Spans are returned in the same order; those without a reference are unchanged.
    """
    full: dict[str, list[Any]] = {}
    expanded: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.end or s.start, s.start)):
        content = span.content
        messages = content.get("messages")
        if span.kind != "llm" or not isinstance(messages, list):
            continue
        source = content.get("messages_from")
        kept = content.get("messages_kept")
        if isinstance(source, str) and isinstance(kept, int) and source in full:
            messages = full[source][:kept] + messages
        full[span.span_id] = messages
    for span in spans:
        if span.span_id in full and "messages_from" in span.content:
            content = {
                k: v for k, v in span.content.items() if k not in ("messages_from", "messages_kept")
            }
            content["messages"] = full[span.span_id]
            span = replace(span, content=content)
        expanded.append(span)
    return expanded
