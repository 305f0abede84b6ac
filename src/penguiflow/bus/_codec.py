"""What the buses share: the JSON form of an envelope and what a consumer receives."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..types import Message
from .protocol import BusEnvelope

__all__ = ["Delivery", "Handler", "decode_envelope", "encode_envelope"]


@dataclass(slots=True)
class Delivery:
    """One envelope handed to a consumer, with its unique id and delivery count."""

    msg_id: str
    envelope: BusEnvelope
    deliveries: int


Handler = Callable[[Delivery], Awaitable[None]]


def encode_envelope(envelope: BusEnvelope) -> dict[str, str]:
    """`{"id": unique id, "body": JSON}` for an envelope; a `Message` payload is tagged."""
    payload = envelope.payload
    if isinstance(payload, Message):
        kind, data = "message", payload.model_dump(mode="json")
    elif isinstance(payload, BaseModel):
        kind, data = "json", payload.model_dump(mode="json")
    else:
        kind, data = "json", payload
    body = {
        "edge": envelope.edge,
        "source": envelope.source,
        "target": envelope.target,
        "trace_id": envelope.trace_id,
        "headers": dict(envelope.headers) if envelope.headers is not None else None,
        "meta": dict(envelope.meta) if envelope.meta is not None else None,
        "kind": kind,
        "payload": data,
    }
    return {"id": uuid.uuid4().hex, "body": json.dumps(body, ensure_ascii=False)}


def decode_envelope(fields: dict[str, str]) -> tuple[str, BusEnvelope]:
    """(message id, envelope) back from `encode_envelope` output (raises on bad data)."""
    body = json.loads(fields["body"])
    payload: Any = body["payload"]
    if body.get("kind") == "message":
        payload = Message.model_validate(payload)
    envelope = BusEnvelope(
        edge=body["edge"],
        source=body["source"],
        target=body["target"],
        trace_id=body["trace_id"],
        payload=payload,
        headers=body["headers"],
        meta=body["meta"],
    )
    return fields["id"], envelope
