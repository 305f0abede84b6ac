"""The A2A JSON-RPC wire format: error codes, and the models that validate what clients send."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CONTENT_TYPE_NOT_SUPPORTED",
    "EXTENDED_CARD_NOT_CONFIGURED",
    "DataPart",
    "FilePart",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "PUSH_NOT_SUPPORTED",
    "Part",
    "SendConfiguration",
    "SendParams",
    "TASK_NOT_CANCELABLE",
    "TASK_NOT_FOUND",
    "TaskIdParams",
    "TaskQueryParams",
    "TextPart",
    "UNSUPPORTED_OPERATION",
    "WireMessage",
]

# JSON-RPC 2.0 codes, then the A2A protocol's own.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
PUSH_NOT_SUPPORTED = -32003
UNSUPPORTED_OPERATION = -32004
CONTENT_TYPE_NOT_SUPPORTED = -32005
EXTENDED_CARD_NOT_CONFIGURED = -32007


class _Strictish(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")


class TextPart(_Strictish):
    kind: Literal["text"]
    text: str
    metadata: dict[str, Any] | None = None


class DataPart(_Strictish):
    kind: Literal["data"]
    data: dict[str, Any]
    metadata: dict[str, Any] | None = None


class FilePart(_Strictish):
    kind: Literal["file"]
    file: dict[str, Any]
    metadata: dict[str, Any] | None = None


Part = Annotated[TextPart | DataPart | FilePart, Field(discriminator="kind")]


class WireMessage(_Strictish):
    kind: Literal["message"] = "message"
    role: Literal["user", "agent"]
    parts: list[Part] = Field(min_length=1)
    message_id: str = Field(alias="messageId", min_length=1)
    context_id: str | None = Field(default=None, alias="contextId")
    task_id: str | None = Field(default=None, alias="taskId")
    metadata: dict[str, Any] | None = None


class SendConfiguration(_Strictish):
    blocking: bool | None = None
    history_length: int | None = Field(default=None, alias="historyLength", ge=0)


class SendParams(_Strictish):
    message: WireMessage
    configuration: SendConfiguration | None = None
    metadata: dict[str, Any] | None = None


class TaskQueryParams(_Strictish):
    id: str
    history_length: int | None = Field(default=None, alias="historyLength", ge=0)


class TaskIdParams(_Strictish):
    id: str
