"""The standard A2A JSON-RPC binding (protocol 0.3): `message/send`, `message/stream`,
`tasks/get`, `tasks/cancel`, and the agent card for `/.well-known/agent-card.json`.

Framework-free: `handle_jsonrpc` takes the raw body and returns either a JSON body
or an async iterator of SSE frames. Every malformed input gets its JSON-RPC error
code (-32700 parse, -32600 invalid request, -32601 unknown method, -32602 invalid
params, -32001 task not found, ...); nothing a client sends raises.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from penguiflow.errors import PenguiflowError
from penguiflow.transports.a2a_parts import from_parts, to_parts

from .auth import Principal
from .models import A2AMessagePayload
from .server import DEFAULT_TENANT, A2ARequestError, A2AServerAdapter
from .sse import dumps
from .tasks import Outcome, TaskRecord, outcome_error
from .wire import (
    CONTENT_TYPE_NOT_SUPPORTED,
    EXTENDED_CARD_NOT_CONFIGURED,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    PUSH_NOT_SUPPORTED,
    TASK_NOT_CANCELABLE,
    TASK_NOT_FOUND,
    UNSUPPORTED_OPERATION,
    DataPart,
    FilePart,
    SendParams,
    TaskIdParams,
    TaskQueryParams,
    TextPart,
)

__all__ = ["handle_jsonrpc", "JsonRpcReply", "agent_card_json", "task_json", "PROTOCOL_VERSION"]

logger = logging.getLogger("penguiflow_a2a")

PROTOCOL_VERSION = "0.3.0"

_PUSH_METHODS = frozenset(
    {
        "tasks/pushNotificationConfig/set",
        "tasks/pushNotificationConfig/get",
        "tasks/pushNotificationConfig/list",
        "tasks/pushNotificationConfig/delete",
    }
)


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jsonrpc: Literal["2.0"]
    method: str
    id: str | int | None = None
    params: Any = None


# -- replies -------------------------------------------------------------------------


@dataclass(slots=True)
class JsonRpcReply:
    """A JSON body (`body`) or an SSE stream (`stream`), HTTP 200; neither for a
    notification, which gets no reply (HTTP 204)."""

    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None

    @property
    def is_empty(self) -> bool:
        """No reply at all: the request was a notification."""
        return self.body is None and self.stream is None


class _RpcError(PenguiflowError):  # becomes a JSON-RPC error reply; never raised out
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def _encode(payload: dict[str, Any]) -> bytes:
    return dumps(payload).encode()


def _error(request_id: Any, code: int, message: str, data: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return _encode({"jsonrpc": "2.0", "id": request_id, "error": error})


def _result(request_id: Any, result: Any) -> bytes:
    return _encode({"jsonrpc": "2.0", "id": request_id, "result": result})


def _validation_data(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


# -- protocol objects ----------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _payload_of(parts: list[TextPart | DataPart | FilePart]) -> Any:
    if any(isinstance(part, FilePart) for part in parts):
        raise _RpcError(CONTENT_TYPE_NOT_SUPPORTED, "Incompatible content types: file parts")
    return from_parts(part.model_dump() for part in parts)


def _status(record: TaskRecord) -> dict[str, Any]:
    status: dict[str, Any] = {"state": record.state, "timestamp": _now()}
    outcome = record.outcome
    if outcome is not None and record.state in ("failed", "canceled", "input-required"):
        status["message"] = _agent_message(record, outcome)
    return status


def _pause_text(pause: dict[str, Any]) -> str:
    payload = pause.get("payload") or {}
    for key in ("prompt", "question", "message"):
        if isinstance(payload.get(key), str) and payload[key]:
            return str(payload[key])
    return f"input required ({pause.get('reason', 'await_input')})"


def _agent_message(record: TaskRecord, outcome: Outcome) -> dict[str, Any]:
    """What the agent says of how the turn ended: why it failed, or what it asks."""
    if outcome.kind == "paused":
        data = dict(outcome.output or {})
        text = _pause_text(data)
    else:
        data = outcome_error(outcome)
        text = str(data.get("message") or outcome.kind)
    return {
        "kind": "message",
        "role": "agent",
        "messageId": uuid.uuid4().hex,
        "taskId": record.task_id,
        "contextId": record.context_id,
        "parts": [{"kind": "text", "text": text}, {"kind": "data", "data": data}],
    }


def _result_artifact(record: TaskRecord, outcome: Outcome) -> dict[str, Any]:
    metadata: dict[str, Any] = {"penguiflow/role": "result"}
    if outcome.meta:
        metadata["meta"] = outcome.meta
    return {
        "artifactId": f"{record.task_id}-result",
        "name": "result",
        "parts": to_parts(outcome.output),
        "metadata": metadata,
    }


def task_json(record: TaskRecord, history_length: int | None = None) -> dict[str, Any]:
    """The A2A `Task` object for a record."""
    task: dict[str, Any] = {
        "kind": "task",
        "id": record.task_id,
        "contextId": record.context_id,
        "status": _status(record),
        "metadata": {"traceId": record.trace_id},
    }
    outcome = record.outcome
    if outcome is not None and outcome.kind == "result":
        task["artifacts"] = [_result_artifact(record, outcome)]
    history = record.messages()
    if history_length is not None:
        history = history[-history_length:] if history_length else []
    task["history"] = history
    return task


def agent_card_json(adapter: A2AServerAdapter, *, url: str, authenticated: bool) -> dict[str, Any]:
    """The standard A2A agent card built from the adapter's `A2AAgentCard`."""
    card = adapter.agent_card
    skills = [
        {
            "id": skill.name,
            "name": skill.name,
            "description": skill.description,
            "tags": list(card.tags),
            "inputModes": ["application/json", "text/plain"],
            "outputModes": ["application/json", "text/plain"],
        }
        for skill in card.skills
    ]
    document: dict[str, Any] = {
        "protocolVersion": PROTOCOL_VERSION,
        "name": card.name,
        "description": card.description,
        "url": url,
        "preferredTransport": "JSONRPC",
        "version": card.version,
        "capabilities": {
            "streaming": True,
            "pushNotifications": False,
            "stateTransitionHistory": False,
        },
        "defaultInputModes": ["application/json", "text/plain"],
        "defaultOutputModes": ["application/json", "text/plain"],
        "skills": skills,
    }
    if card.documentation_url:
        document["documentationUrl"] = card.documentation_url
    if authenticated:
        document["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document


# -- dispatch ------------------------------------------------------------------------


async def handle_jsonrpc(
    adapter: A2AServerAdapter, body: bytes, principal: Principal | None
) -> JsonRpcReply:
    """Answer one JSON-RPC request body."""
    try:
        raw = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return JsonRpcReply(body=_error(None, PARSE_ERROR, "Invalid JSON payload"))
    request_id = raw.get("id") if isinstance(raw, dict) else None
    if not isinstance(request_id, str | int) or isinstance(request_id, bool):
        request_id = None
    try:
        envelope = _Envelope.model_validate(raw)
    except ValidationError as exc:
        return JsonRpcReply(
            body=_error(
                request_id,
                INVALID_REQUEST,
                "Request payload validation error",
                _validation_data(exc),
            )
        )
    if isinstance(raw, dict) and "id" not in raw:
        return await _notification(adapter, envelope, principal)
    try:
        return await _dispatch(adapter, envelope, principal)
    except _RpcError as exc:
        error = _error(envelope.id, exc.code, exc.message, exc.data)
        if envelope.method in _STREAMING_METHODS:
            # A client asking for a stream reads one: the error is its only event.
            return JsonRpcReply(stream=_one_frame(error))
        return JsonRpcReply(body=error)


_STREAMING_METHODS = frozenset({"message/stream", "tasks/resubscribe"})


async def _one_frame(body: bytes) -> AsyncIterator[bytes]:
    yield _sse_data(body)


def _sse_data(body: bytes) -> bytes:
    """One SSE event carrying a JSON-RPC response."""
    return b"data: " + body + b"\n\n"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


async def _notification(
    adapter: A2AServerAdapter, envelope: _Envelope, principal: Principal | None
) -> JsonRpcReply:
    """Carry out a notification (a request without `id`). One that succeeds gets no
    reply, as JSON-RPC asks; one that fails (an unknown method, invalid params, ...)
    gets its error with `id: null`, so a mistake is never silent. A stream nobody
    can read is not started."""
    try:
        if envelope.method in _STREAMING_METHODS:
            if envelope.method == "message/stream":
                _params(SendParams, envelope.params)  # invalid params are still an error
            logger.info("a2a: %s sent as a notification; nothing to stream to", envelope.method)
            return JsonRpcReply()
        await _dispatch(adapter, envelope, principal)
    except _RpcError as exc:
        logger.info("a2a: notification %s failed: %s (%s)", envelope.method, exc.message, exc.code)
        return JsonRpcReply(body=_error(None, exc.code, exc.message, exc.data))
    return JsonRpcReply()


def _params(model: type[BaseModel], params: Any) -> Any:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise _RpcError(INVALID_PARAMS, "Invalid parameters", _validation_data(exc)) from None


async def _dispatch(
    adapter: A2AServerAdapter, envelope: _Envelope, principal: Principal | None
) -> JsonRpcReply:
    method, request_id = envelope.method, envelope.id
    if method == "message/send":
        params = _params(SendParams, envelope.params)
        return JsonRpcReply(body=_result(request_id, await _send(adapter, params, principal)))
    if method == "message/stream":
        params = _params(SendParams, envelope.params)
        record = await _prepare(adapter, params, principal)
        frames = adapter.guard_unstarted(_stream(adapter, record, request_id, start=True), record)
        return JsonRpcReply(stream=frames)
    if method == "tasks/resubscribe":
        target = _params(TaskIdParams, envelope.params)
        record = await _visible(adapter, target.id, principal)
        return JsonRpcReply(stream=_stream(adapter, record, request_id, start=False))
    if method == "tasks/get":
        query = _params(TaskQueryParams, envelope.params)
        record = await _visible(adapter, query.id, principal)
        return JsonRpcReply(body=_result(request_id, task_json(record, query.history_length)))
    if method == "tasks/cancel":
        target = _params(TaskIdParams, envelope.params)
        record = await _visible(adapter, target.id, principal)
        if not await adapter.cancel_task(record):
            raise _RpcError(TASK_NOT_CANCELABLE, "Task cannot be canceled")
        return JsonRpcReply(body=_result(request_id, _cancelled_view(record)))
    if method in _PUSH_METHODS:
        raise _RpcError(PUSH_NOT_SUPPORTED, "Push Notification is not supported")
    if method == "agent/getAuthenticatedExtendedCard":
        raise _RpcError(
            EXTENDED_CARD_NOT_CONFIGURED, "Authenticated Extended Card is not configured"
        )
    raise _RpcError(METHOD_NOT_FOUND, "Method not found")


def _cancelled_view(record: TaskRecord) -> dict[str, Any]:
    view = task_json(record)
    if view["status"]["state"] not in ("completed", "failed", "canceled"):
        view["status"] = {"state": "canceled", "timestamp": _now()}
    return view


async def _visible(
    adapter: A2AServerAdapter, task_id: str, principal: Principal | None
) -> TaskRecord:
    record = await adapter.find_task(task_id, principal=principal)
    if record is None:
        raise _RpcError(TASK_NOT_FOUND, "Task not found")
    return record


async def _prepare(
    adapter: A2AServerAdapter, params: SendParams, principal: Principal | None
) -> TaskRecord:
    message = params.message
    paused = None
    if message.task_id is not None:
        paused = await _visible(adapter, message.task_id, principal)
        if paused.state != "input-required":
            raise _RpcError(
                UNSUPPORTED_OPERATION,
                f"Task is {paused.state}: only a task in state input-required takes a "
                "follow-up message; omit taskId to start a new task",
            )
        if message.context_id and message.context_id != paused.context_id:
            raise _RpcError(
                INVALID_PARAMS,
                f"contextId {message.context_id!r} is not the task's ({paused.context_id!r})",
            )
    metadata = {**(params.metadata or {}), **(message.metadata or {})}
    fields: dict[str, Any] = {"payload": _payload_of(message.parts)}
    for key in ("headers", "meta", "traceId", "deadlineSeconds"):
        if metadata.get(key) is not None:
            fields[key] = metadata[key]
    if message.context_id:
        fields["contextId"] = message.context_id
    try:
        request = A2AMessagePayload.model_validate(fields)
    except ValidationError as exc:
        raise _RpcError(INVALID_PARAMS, "Invalid parameters", _validation_data(exc)) from None
    wire = message.model_dump(mode="json", by_alias=True, exclude_none=True)
    if paused is not None:
        wire.setdefault("contextId", paused.context_id)
        outcome = paused.outcome
        said = _agent_message(paused, outcome) if outcome is not None else None
        try:
            return adapter.continue_task(paused, request, a2a_message=wire, agent_message=said)
        except A2ARequestError as exc:
            code = {409: UNSUPPORTED_OPERATION}.get(exc.status_code, INTERNAL_ERROR)
            raise _RpcError(code, exc.detail) from None
    try:
        # A plain A2A client sends no penguiflow headers: it works out of the box, in
        # the default tenant (without `auth` there is no isolation to keep).
        return adapter.prepare(
            request, principal=principal, a2a_message=wire, default_tenant=DEFAULT_TENANT
        )
    except A2ARequestError as exc:
        code = {409: INVALID_REQUEST, 422: INVALID_PARAMS}.get(exc.status_code, INTERNAL_ERROR)
        raise _RpcError(code, exc.detail) from None


async def _send(
    adapter: A2AServerAdapter, params: SendParams, principal: Principal | None
) -> dict[str, Any]:
    record = await _prepare(adapter, params, principal)
    configuration = params.configuration
    if configuration is not None and configuration.blocking is False:
        await adapter.share_task(record)  # any replica answers for it from now on
        adapter.start_background(record)
        return task_json(record, configuration.history_length)
    adapter.start_background(record)
    try:
        async for _ in adapter.follow(record):
            pass
    except asyncio.CancelledError:
        # The caller went before the answer, which is the only place it would have
        # learnt the task id: nobody can resubscribe, so the task ends now.
        await adapter.cancel_task(record)
        raise
    history_length = configuration.history_length if configuration is not None else None
    return task_json(record, history_length)


async def _stream(
    adapter: A2AServerAdapter, record: TaskRecord, request_id: Any, *, start: bool
) -> AsyncIterator[bytes]:
    """The SSE frames of a task: its `Task` object, then every step of its running
    turn (from the turn's start: a resubscription misses nothing) to the final
    status. `start` runs the turn first (`message/stream`)."""
    if start:
        await adapter.share_task(record)  # any replica answers for it from now on
        adapter.start_background(record)
    yield _frame(request_id, task_json(record))
    if record.replica is not None:  # another replica runs it: follow its shared record
        async for current in adapter.watch_remote(record):
            ids = {"taskId": current.task_id, "contextId": current.context_id}
            outcome = current.outcome
            if outcome is not None and outcome.kind == "result":
                artifact = _result_artifact(current, outcome)
                yield _frame(
                    request_id,
                    {"kind": "artifact-update", **ids, "artifact": artifact, "lastChunk": True},
                )
            final = current.state in ("completed", "failed", "canceled", "input-required")
            update = {"kind": "status-update", **ids, "final": final, "status": _status(current)}
            yield _frame(request_id, update)
        return
    async for frame in _step_frames(adapter, record, request_id):
        yield frame


def _frame(request_id: Any, result: dict[str, Any]) -> bytes:
    return _sse_data(_result(request_id, result))


async def _step_frames(
    adapter: A2AServerAdapter, record: TaskRecord, request_id: Any
) -> AsyncIterator[bytes]:
    def frame(result: dict[str, Any]) -> bytes:
        return _frame(request_id, result)

    ids = {"taskId": record.task_id, "contextId": record.context_id}
    steps = adapter.follow(record, heartbeat_s=adapter.heartbeat_s)
    first_chunk = True
    try:
        async for step in steps:
            if step.accepted:
                yield frame(
                    {
                        "kind": "status-update",
                        **ids,
                        "final": False,
                        "status": {"state": "working", "timestamp": _now()},
                    }
                )
                continue
            chunk = step.chunk
            if chunk is not None:
                artifact = {
                    "artifactId": f"{record.task_id}-stream",
                    "name": "stream",
                    "parts": [{"kind": "text", "text": chunk.text}],
                    "metadata": {"seq": chunk.seq, "done": chunk.done, "meta": dict(chunk.meta)},
                }
                yield frame(
                    {
                        "kind": "artifact-update",
                        **ids,
                        "artifact": artifact,
                        "append": not first_chunk,
                        "lastChunk": chunk.done,
                    }
                )
                first_chunk = chunk.done
                continue
            outcome = step.outcome
            if outcome is None:
                yield b": keep-alive\n\n"
                continue
            if outcome.kind == "result":
                yield frame(
                    {
                        "kind": "artifact-update",
                        **ids,
                        "artifact": _result_artifact(record, outcome),
                        "lastChunk": True,
                    }
                )
            yield frame({"kind": "status-update", **ids, "final": True, "status": _status(record)})
    finally:
        await steps.aclose()
