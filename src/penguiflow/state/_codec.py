"""What every store shares: JSON encoding that refuses bad data, row validation, tokens."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import InvalidArgumentError
from .errors import CorruptRecordError, InvalidDataError
from .protocol import RemoteBinding, StoredEvent, StoredTask

if TYPE_CHECKING:
    from ..spans import RunSummary, Span

__all__ = [
    "EventRow",
    "BindingRow",
    "decode_event",
    "decode_binding",
    "decode_state",
    "encode",
    "event_key",
    "token_digest",
    "check_id",
    "check_name",
    "check_page",
    "SpanRecord",
    "RunRecord",
    "SpanBatch",
    "encode_spans",
    "SpanChunk",
    "encode_span_chunks",
    "decode_span",
    "decode_span_chunk",
    "event_ts",
    "decode_summary",
    "check_run_filters",
    "run_search_text",
    "encode_task",
    "decode_task",
]


# One encoder for every write (`json.dumps` with options builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(value: Any, *, what: str | Callable[[], str]) -> str:
    """Compact JSON text of `value`, valid UTF-8 (lone surrogates are refused).

    `what` names the value in the error (a callable is only called on failure).
    """
    try:
        text = _ENCODER.encode(value)
        if not text.isascii():
            text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        name = what if isinstance(what, str) else what()
        raise InvalidDataError(f"{name} cannot be stored as JSON: {exc}") from exc
    return text


class EventRow(BaseModel):
    """A stored event, as it must come back from a backend."""

    model_config = ConfigDict(extra="forbid", strict=True)

    trace_id: str | None
    ts: float
    kind: str
    node_name: str | None
    node_id: str | None
    payload: dict[str, Any]


class BindingRow(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    trace_id: str
    context_id: str | None
    task_id: str
    agent_url: str


def encode_event(event: StoredEvent) -> str:
    if event.trace_id is not None:
        check_id(event.trace_id, "trace_id")
    event_ts(event)
    return encode(
        {
            "trace_id": event.trace_id,
            "ts": event.ts,
            "kind": event.kind,
            "node_name": event.node_name,
            "node_id": event.node_id,
            "payload": dict(event.payload),
        },
        what=f"event {event.kind!r}",
    )


def event_ts(event: StoredEvent) -> float:
    """The event's `ts` as a float; `InvalidDataError` unless it is a number (it could
    not be read back otherwise)."""
    ts: Any = event.ts
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise InvalidDataError(f"event ts must be a number, got {type(ts).__name__}")
    try:
        value = float(ts)
    except OverflowError:  # an int beyond any float
        value = math.inf
    if not math.isfinite(value):
        raise InvalidDataError(f"event ts must be a finite number, got {ts!r}")
    return value


def event_key(encoded: str) -> str:
    """Identity of an event for idempotent re-saves: the digest of its encoding."""
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def decode_event(text: Any, *, key: str) -> StoredEvent:
    try:
        row = EventRow.model_validate_json(text)
    except (ValidationError, TypeError, ValueError) as exc:
        raise CorruptRecordError(f"stored event {key} is not a valid event", key=key) from exc
    return StoredEvent(row.trace_id, row.ts, row.kind, row.node_name, row.node_id, row.payload)


def encode_binding(binding: RemoteBinding) -> str:
    check_id(binding.trace_id, "trace_id")
    check_id(binding.task_id, "task_id")
    return encode(
        {
            "trace_id": binding.trace_id,
            "context_id": binding.context_id,
            "task_id": binding.task_id,
            "agent_url": binding.agent_url,
        },
        what="remote binding",
    )


def decode_binding(text: Any, *, key: str) -> RemoteBinding:
    try:
        row = BindingRow.model_validate_json(text)
    except (ValidationError, TypeError, ValueError) as exc:
        raise CorruptRecordError(f"stored binding {key} is not valid", key=key) from exc
    return RemoteBinding(row.trace_id, row.context_id, row.task_id, row.agent_url)


def decode_state(text: Any, *, key: str) -> dict[str, Any]:
    """A stored planner state: must be a JSON object."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise CorruptRecordError(f"stored planner state {key} is not JSON", key=key) from exc
    if not isinstance(value, dict):
        raise CorruptRecordError(f"stored planner state {key} is not an object", key=key)
    return value


def check_id(value: Any, what: str) -> str:
    """A trace/task id every backend can store: a string without NUL, valid UTF-8."""
    if not isinstance(value, str):
        raise InvalidDataError(f"{what} must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise InvalidDataError(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidDataError(f"{what} is not valid UTF-8: {exc}") from exc
    return value


def check_page(offset: Any, limit: Any) -> tuple[int, int | None]:
    """Validate history paging arguments: `offset >= 0`, `limit` None or `>= 0`."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidArgumentError(f"offset must be an int >= 0, got {offset!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidArgumentError(f"limit must be None or an int >= 0, got {limit!r}")
    return offset, limit


def token_digest(token: str, tenant: str | None = None) -> str:
    """What a store keeps instead of a resume token: a SHA-256 digest (tenant-scoped)."""
    if not isinstance(token, str) or not token:
        raise InvalidDataError("resume token must be a non-empty string")
    scope = f"{tenant}\x00" if tenant is not None else ""
    return hashlib.sha256(f"{scope}{token}".encode("utf-8", "surrogatepass")).hexdigest()


def check_name(value: Any, what: str) -> str:
    """An id that names a record or a replica: `check_id`, and not empty."""
    name = check_id(value, what)
    if not name:
        raise InvalidDataError(f"{what} must not be empty")
    return name


def require_mapping(payload: Any, *, what: str = "planner state") -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise InvalidDataError(f"{what} must be a mapping, got {type(payload).__name__}")
    return payload


# -- spans -----------------------------------------------------------------------------

_SPAN_STATUSES = frozenset({"running", "ok", "error", "paused", "cancelled"})


@dataclass(slots=True, frozen=True)
class SpanRecord:
    """One span, checked and encoded: what a backend writes to its spans table."""

    run_id: str
    span_id: str
    start: float
    body: str


@dataclass(slots=True, frozen=True)
class RunRecord:
    """A run's entry in the run list, taken from its root span (content left out)."""

    run_id: str
    start: float
    status: str
    kind: str
    search: str
    body: str


@dataclass(slots=True, frozen=True)
class SpanBatch:
    """A batch of spans ready to write: one record per `(run_id, span_id)`, last wins."""

    spans: list[SpanRecord]
    runs: list[RunRecord]


def _check_span(span: Span) -> None:
    run_id, span_id, kind, parent_id = span.run_id, span.span_id, span.kind, span.parent_id
    if (
        type(run_id) is str
        and type(span_id) is str
        and type(kind) is str
        and (parent_id is None or type(parent_id) is str)
        and span.status in _SPAN_STATUSES
        and type(span.start) in (float, int)
    ):
        ids = f"{run_id}{span_id}{kind}{parent_id or ''}"
        if ids.isascii() and "\x00" not in ids:
            return  # the common case, in one pass; anything else is named below
    check_id(span.run_id, "span run_id")
    check_id(span.span_id, "span_id")
    check_id(span.kind, "span kind")
    if span.parent_id is not None:
        check_id(span.parent_id, "span parent_id")
    if span.status not in _SPAN_STATUSES:
        raise InvalidDataError(
            f"span status must be one of {sorted(_SPAN_STATUSES)}, got {span.status!r}"
        )
    if isinstance(span.start, bool) or not isinstance(span.start, int | float):
        raise InvalidDataError(f"span start must be a number, got {type(span.start).__name__}")


def run_search_text(summary: RunSummary) -> str:
    """The text `list_runs(text=...)` searches: `search_text()` without NUL characters.

    NUL cannot be held by every backend's text columns (and a search cannot name it).
    """
    return summary.search_text().replace("\x00", "")


def check_run_filters(
    status: Any, kind: Any, text: Any
) -> tuple[str | None, str | None, str | None]:
    """Validate `list_runs` filters; `text` becomes what to look for in the search text."""
    if status is not None:
        check_id(status, "status")
    if kind is not None:
        check_id(kind, "kind")
    if text is None:
        return status, kind, None
    return status, kind, check_id(text, "text").lower()


def _span_name(span: Span) -> str:
    return f"span {span.kind!r} {span.span_id!r} of run {span.run_id!r}"


def _latest_spans(spans: Iterable[Span]) -> tuple[list[Span], list[RunRecord]]:
    """Check a batch: its spans, one per `(run_id, span_id)` (a later save of the same
    span replaces it, in the order of its last save), and the run-list entries of the
    roots among them."""
    from ..spans import RunSummary

    latest: dict[tuple[str, str], Span] = {}
    runs: dict[str, RunRecord] = {}
    for span in spans:
        _check_span(span)
        key = (span.run_id, span.span_id)
        latest.pop(key, None)
        latest[key] = span
        if span.parent_id is None:
            data = span.to_dict()
            data["content"] = {}
            runs.pop(span.run_id, None)
            runs[span.run_id] = RunRecord(
                span.run_id,
                float(span.start),
                span.status,
                span.kind,
                run_search_text(RunSummary.from_root(span, 0)),
                encode(data, what=f"root span of run {span.run_id!r}"),
            )
    return list(latest.values()), list(runs.values())


def encode_spans(spans: Iterable[Span]) -> SpanBatch:
    """Check and encode a batch before anything is written (a refused batch writes nothing).

    Raises `InvalidDataError` for data that cannot be stored as JSON, ids a backend
    cannot hold, or an unknown status.
    """
    checked, runs = _latest_spans(spans)
    records = [
        SpanRecord(
            span.run_id,
            span.span_id,
            float(span.start),
            encode(span.to_dict(), what=partial(_span_name, span)),
        )
        for span in checked
    ]
    return SpanBatch(records, runs)


@dataclass(slots=True, frozen=True)
class SpanChunk:
    """The spans of one run in one batch, as one JSON array (in the order saved)."""

    run_id: str
    body: str


def encode_span_chunks(spans: Iterable[Span]) -> tuple[list[SpanChunk], list[RunRecord]]:
    """`encode_spans` for a store that keeps a batch's spans of each run together.

    One JSON text per run instead of one per span: what an append-only store
    writes (`decode_span_chunk` reads it back; across chunks, the last save of a
    span wins). Raises `InvalidDataError` as `encode_spans` does, naming the span.
    """
    checked, runs = _latest_spans(spans)
    by_run: dict[str, list[Span]] = {}
    for span in checked:
        group = by_run.get(span.run_id)
        if group is None:
            by_run[span.run_id] = group = []
        group.append(span)
    chunks = []
    for run_id, group in by_run.items():
        try:
            body = encode([span.to_dict() for span in group], what=f"spans of run {run_id!r}")
        except InvalidDataError:
            for span in group:  # name the span that cannot be stored
                encode(span.to_dict(), what=partial(_span_name, span))
            raise
        chunks.append(SpanChunk(run_id, body))
    return chunks, runs


def decode_span_chunk(text: Any, *, key: str) -> list[Span]:
    """The spans of a stored chunk; `CorruptRecordError` naming `key` when it is not one."""
    from ..spans import Span

    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise CorruptRecordError(f"stored spans {key} are not JSON", key=key) from exc
    if not isinstance(data, list):
        raise CorruptRecordError(f"stored spans {key} are not a list", key=key)
    spans = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise CorruptRecordError(f"stored span {key}[{index}] is not an object", key=key)
        try:
            spans.append(Span.from_dict(item))
        except (TypeError, ValueError) as exc:
            raise CorruptRecordError(
                f"stored span {key}[{index}] is not a valid span: {exc}", key=key
            ) from exc
    return spans


def _span_from_text(text: Any, *, key: str, what: str) -> Span:
    from ..spans import Span

    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise CorruptRecordError(f"stored {what} {key} is not JSON", key=key) from exc
    if not isinstance(data, dict):
        raise CorruptRecordError(f"stored {what} {key} is not an object", key=key)
    try:
        return Span.from_dict(data)
    except (TypeError, ValueError) as exc:  # InvalidDataError is a ValueError
        raise CorruptRecordError(
            f"stored {what} {key} is not a valid span: {exc}", key=key
        ) from exc


def decode_span(text: Any, *, key: str) -> Span:
    """A stored span; `CorruptRecordError` naming `key` when the row is not one."""
    return _span_from_text(text, key=key, what="span")


def decode_summary(text: Any, span_count: int, *, key: str) -> RunSummary:
    """A stored run-list entry (its root span) as a `RunSummary`."""
    from ..spans import RunSummary

    root = _span_from_text(text, key=key, what="run")
    return RunSummary.from_root(root, int(span_count))


# -- A2A tasks ---------------------------------------------------------------------------


class TaskRow(BaseModel):
    """A stored task record, as it must come back from a backend."""

    model_config = ConfigDict(extra="forbid", strict=True)

    task_id: str
    context_id: str
    owner: str | None
    replica: str
    state: str
    updated_at: float
    data: dict[str, Any]


def encode_task(task: StoredTask) -> str:
    """Check and encode a task record before anything is written.

    Raises `InvalidDataError` for an empty or unstorable `task_id`/`replica`, fields of
    the wrong type, or `data` that is not a mapping of JSON data.
    """
    check_name(task.task_id, "task_id")
    check_name(task.replica, "replica")
    check_id(task.context_id, "context_id")
    if task.owner is not None:
        check_id(task.owner, "owner")
    check_id(task.state, "task state")
    updated_at = task.updated_at
    if isinstance(updated_at, bool) or not isinstance(updated_at, int | float):
        raise InvalidDataError(f"task updated_at must be a number, got {type(updated_at).__name__}")
    data = require_mapping(task.data, what="task data")
    return encode(
        {
            "task_id": task.task_id,
            "context_id": task.context_id,
            "owner": task.owner,
            "replica": task.replica,
            "state": task.state,
            "updated_at": float(updated_at),
            "data": dict(data),
        },
        what=f"task {task.task_id!r}",
    )


def decode_task(text: Any, *, key: str) -> StoredTask:
    """The task record stored under the task id `key`; `CorruptRecordError` otherwise."""
    try:
        row = TaskRow.model_validate_json(text)
    except (ValidationError, TypeError, ValueError) as exc:
        raise CorruptRecordError(f"stored task {key} is not a valid task", key=key) from exc
    if row.task_id != key:
        raise CorruptRecordError(f"stored task {key} holds task {row.task_id!r}", key=key)
    return StoredTask(
        row.task_id, row.context_id, row.owner, row.replica, row.state, row.updated_at, row.data
    )
