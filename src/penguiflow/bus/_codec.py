"""The wire form the buses share: an envelope as one JSON text, under a message id.

A `Message` payload is tagged and rebuilt as a `Message`; any other payload must be
JSON data (a pydantic model is sent as its JSON dump). Nothing is unpickled and no
class named in the data is imported.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

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


def encode_body(envelope: BusEnvelope) -> str:
    """The envelope as one line of JSON (never a raw newline inside)."""
    payload = envelope.payload
    head = _encode_json(
        {
            "edge": envelope.edge,
            "source": envelope.source,
            "target": envelope.target,
            "trace_id": envelope.trace_id,
            "headers": dict(envelope.headers) if envelope.headers is not None else None,
            "meta": dict(envelope.meta) if envelope.meta is not None else None,
            "kind": "message" if isinstance(payload, Message) else "json",
        }
    )
    data = payload.model_dump_json() if isinstance(payload, BaseModel) else _encode_json(payload)
    return f'{head[:-1]}, "payload": {data}}}'


class _Wire(BaseModel):
    edge: str
    source: str | None
    target: str | None
    trace_id: str | None
    headers: dict[str, Any] | None
    meta: dict[str, Any] | None


class _MessageWire(_Wire):
    kind: Literal["message"]
    payload: Message


class _JsonWire(_Wire):
    kind: Literal["json"]
    payload: Any


@cache
def _wire() -> TypeAdapter[_MessageWire | _JsonWire]:
    # Built on first use: keeps `import penguiflow.bus` free of schema building.
    return TypeAdapter(Annotated[_MessageWire | _JsonWire, Field(discriminator="kind")])


def decode_body(body: str | bytes) -> BusEnvelope:
    """The envelope back from `encode_body` (raises `ValueError` on bad data)."""
    wire = _wire().validate_json(body)
    return BusEnvelope(
        edge=wire.edge,
        source=wire.source,
        target=wire.target,
        trace_id=wire.trace_id,
        payload=wire.payload,
        headers=wire.headers,
        meta=wire.meta,
    )
