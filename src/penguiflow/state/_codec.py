"""What every store shares: JSON encoding that refuses bad data, row validation, tokens."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import InvalidArgumentError
from .errors import CorruptRecordError, InvalidDataError
from .protocol import RemoteBinding, StoredEvent

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
    "check_page",
]


def encode(value: Any, *, what: str) -> str:
    """Compact JSON text of `value`, valid UTF-8 (lone surrogates are refused)."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise InvalidDataError(f"{what} cannot be stored as JSON: {exc}") from exc
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


def require_mapping(payload: Any) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise InvalidDataError(f"planner state must be a mapping, got {type(payload).__name__}")
    return payload
