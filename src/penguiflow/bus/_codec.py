"""The wire form the buses share: an envelope as one JSON text, under a message id.

A `Message` payload is tagged and rebuilt as a `Message`, a `FlowError` (a worker
reporting a failed trace) as a `FlowError` (its `to_payload()`; the original exception
stays behind, its class name in `exception_type`); any other payload must be JSON
data (a pydantic model is sent as its JSON dump). Nothing is unpickled and no class
named in the data is imported.

The publisher's trace context (`traceparent`, `tracestate`) travels beside the
envelope (`"trace_context"`), so a message's own meta is still sent once; decoding
puts it into the envelope's `meta`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter
from pydantic_core import to_json

from ..errors import FlowError, exception_repr
from ..types import Message
from .errors import InvalidBusOptionError
from .protocol import BusEnvelope

__all__ = ["check_msg_id", "decode_body", "derived_msg_id", "encode_body", "new_msg_id"]

_encode_json = json.JSONEncoder(ensure_ascii=False).encode


def new_msg_id() -> str:
    """A fresh unique message id (32 hex digits)."""
    return os.urandom(16).hex()


def derived_msg_id(scope: str, msg_id: str) -> str:
    """The same id for the same `(scope, msg_id)`, in any process (32 hex digits)."""
    text = f"{scope}\n{msg_id}".encode()
    return hashlib.blake2b(text, digest_size=16).hexdigest()


def check_msg_id(msg_id: str) -> str:
    """`msg_id` if it is usable as a message id: non-empty, no whitespace."""
    if not msg_id or not msg_id.isprintable() or " " in msg_id:  # every other space is unprintable
        raise InvalidBusOptionError(
            f"msg_id must be non-empty, printable and without whitespace, got {msg_id!r}",
            option="msg_id",
            value=msg_id,
        )
    return msg_id


def encode_body(envelope: BusEnvelope, trace_context: Mapping[str, str] | None = None) -> str:
    """The envelope as one line of JSON (never a raw newline inside).

    For a `Message` payload whose envelope carries exactly the message's own trace
    id, headers and meta (as every envelope the runtime builds does), those are
    sent once, inside the message (`"kind": "message", "derived": true`).
    `trace_context` (W3C `traceparent`/`tracestate`) is sent beside them.
    """
    payload = envelope.payload
    head: dict[str, Any] = {
        "edge": envelope.edge,
        "source": envelope.source,
        "target": envelope.target,
    }
    if trace_context:
        head["trace_context"] = dict(trace_context)
    if isinstance(payload, Message):
        head["kind"] = "message"
        if (
            envelope.trace_id == payload.trace_id
            and envelope.meta == payload.meta
            and envelope.headers == payload.headers.model_dump()
        ):
            head["derived"] = True
        else:
            head["trace_id"] = envelope.trace_id
            head["headers"] = envelope.headers
            head["meta"] = envelope.meta
        head["payload"] = payload
        return to_json(head).decode()
    head["trace_id"] = envelope.trace_id
    head["headers"] = envelope.headers
    head["meta"] = envelope.meta
    if isinstance(payload, FlowError):
        head["kind"] = "error"
        # Metadata a node attached may hold anything: what JSON cannot carry is sent as
        # its repr (the meta and headers of the envelope must be JSON, as for any other).
        error = to_json(payload.to_payload(), fallback=exception_repr).decode()
        return f'{to_json(head).decode()[:-1]},"payload": {error}}}'
    head["kind"] = "json"
    data = payload.model_dump_json() if isinstance(payload, BaseModel) else _encode_json(payload)
    return f'{to_json(head).decode()[:-1]},"payload": {data}}}'


class _MessageWire(BaseModel):
    edge: str
    source: str | None
    target: str | None
    kind: Literal["message"]
    derived: bool = False  # trace id, headers and meta are the message's own
    trace_id: str | None = None
    headers: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    trace_context: dict[str, str] | None = None
    payload: Message


class _JsonWire(BaseModel):
    edge: str
    source: str | None
    target: str | None
    kind: Literal["json"]
    trace_id: str | None
    headers: dict[str, Any] | None
    meta: dict[str, Any] | None
    trace_context: dict[str, str] | None = None
    payload: Any


class _FlowErrorPayload(BaseModel):
    code: str
    message: str
    trace_id: str | None = None
    node_name: str | None = None
    node_id: str | None = None
    exception_type: str | None = None
    metadata: dict[str, Any] | None = None


class _ErrorWire(BaseModel):
    edge: str
    source: str | None
    target: str | None
    kind: Literal["error"]
    trace_id: str | None
    headers: dict[str, Any] | None
    meta: dict[str, Any] | None
    trace_context: dict[str, str] | None = None
    payload: _FlowErrorPayload


_Wire = _MessageWire | _JsonWire | _ErrorWire


@cache
def _wire() -> TypeAdapter[_Wire]:
    # Built on first use: keeps `import penguiflow.bus` free of schema building.
    return TypeAdapter(Annotated[_Wire, Field(discriminator="kind")])


def _flow_error(sent: _FlowErrorPayload) -> FlowError:
    error = FlowError(
        trace_id=sent.trace_id,
        node_name=sent.node_name,
        node_id=sent.node_id,
        code=sent.code,
        message=sent.message,
        metadata=sent.metadata,
    )
    error.exception_type = sent.exception_type  # its original exception stayed behind
    return error


def decode_body(body: str | bytes) -> BusEnvelope:
    """The envelope back from `encode_body` (raises `ValueError` on bad data)."""
    wire = _wire().validate_json(body)
    trace_id, headers, meta = wire.trace_id, wire.headers, wire.meta
    if isinstance(wire, _MessageWire) and wire.derived:
        message = wire.payload
        trace_id, headers, meta = message.trace_id, message.headers.model_dump(), dict(message.meta)
    if wire.trace_context:
        meta = {**(meta or {}), **wire.trace_context}
    payload = _flow_error(wire.payload) if isinstance(wire, _ErrorWire) else wire.payload
    return BusEnvelope(wire.edge, wire.source, wire.target, trace_id, payload, headers, meta)
