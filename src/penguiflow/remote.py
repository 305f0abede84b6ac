"""Remote nodes: a node that delegates its work to another agent through a transport.

`RemoteNode(...)` builds an ordinary `Node` whose function sends the incoming
`Message` through a `RemoteTransport` (unary `send` or streaming `stream`), records
the remote task as a `RemoteBinding` in the flow's state store, forwards trace
cancellation to the remote agent and reports `remote_*` events. Transports (HTTP,
A2A, in-process) are supplied by the caller.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from .core import Context, PenguiFlow, TraceCancelled
from .errors import ContextError
from .node import Node, NodePolicy
from .state import RemoteBinding
from .types import Message

__all__ = [
    "RemoteCallRequest",
    "RemoteCallResult",
    "RemoteNode",
    "RemoteStreamEvent",
    "RemoteTransport",
]


@dataclass(slots=True)
class RemoteCallRequest:
    """What a transport receives: the message plus where and how to call.

    `metadata` is the message's `meta` (the same dict). `timeout_s` is the node
    policy's timeout, for information: the runtime enforces it itself.
    """

    message: Message
    skill: str
    agent_url: str
    agent_card: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] | None = None
    timeout_s: float | None = None


@dataclass(slots=True)
class RemoteCallResult:
    """A unary call's outcome; `result` becomes the node's output (`None`: no output)."""

    result: Any
    context_id: str | None = None
    task_id: str | None = None
    agent_url: str | None = None
    meta: Mapping[str, Any] | None = None


@dataclass(slots=True)
class RemoteStreamEvent:
    """One streamed update: optional text chunk, identity, and a candidate final result."""

    text: str | None = None
    done: bool = False
    meta: Mapping[str, Any] | None = None
    context_id: str | None = None
    task_id: str | None = None
    agent_url: str | None = None
    result: Any | None = None


class RemoteTransport(Protocol):
    """How a remote node talks to another agent. Not runtime-checkable."""

    async def send(self, request: RemoteCallRequest) -> RemoteCallResult:
        """Run the skill to completion and return its result."""
        ...

    def stream(self, request: RemoteCallRequest) -> AsyncIterator[RemoteStreamEvent]:
        """Run the skill and yield its events; a plain method (an async generator fits)."""
        ...

    async def cancel(self, *, agent_url: str, task_id: str) -> None:
        """Ask the agent to cancel a task it is running."""


# -- size estimation ---------------------------------------------------------------------


def _json_fallback(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return repr(value)


def _estimate_bytes(value: Any) -> int | None:
    """Approximate JSON size of `value` in UTF-8 bytes; `None` when unknown."""
    if value is None:
        return None
    try:
        data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        encoded = json.dumps(data, default=_json_fallback)
    except Exception:  # any encoding failure falls back to str(); see below
        try:
            return len(str(value).encode("utf-8"))
        except Exception:  # an object whose __str__ fails has no known size
            return None
    return len(encoded.encode("utf-8"))


# -- the call ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Binding:
    context_id: str | None
    task_id: str
    agent_url: str


class _RemoteCall:
    """One attempt of a remote node: request, telemetry, binding and cancel watcher."""

    __slots__ = (
        "agent_url",
        "base",
        "binding",
        "configured_url",
        "context_id",
        "ctx",
        "message",
        "node",
        "record_binding",
        "runtime",
        "start",
        "task_id",
        "trace_event",
        "transport",
        "watcher",
    )

    def __init__(
        self,
        *,
        transport: RemoteTransport,
        message: Message,
        ctx: Context,
        runtime: PenguiFlow,
        node: Node,
        skill: str,
        agent_url: str,
        streaming: bool,
        record_binding: bool,
    ) -> None:
        self.transport = transport
        self.message = message
        self.ctx = ctx
        self.runtime = runtime
        self.node = node
        self.record_binding = record_binding
        self.configured_url = agent_url
        self.agent_url: str | None = agent_url
        self.context_id: str | None = None
        self.task_id: str | None = None
        self.binding: _Binding | None = None
        self.trace_event: asyncio.Event | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.start = time.monotonic()
        base: dict[str, Any] = {
            "remote_skill": skill,
            "remote_transport": type(transport).__name__,
            "remote_streaming": streaming,
        }
        request_bytes = _estimate_bytes(message)
        if request_bytes is not None:
            base["remote_request_bytes"] = request_bytes
        self.base = base

    # telemetry

    def _elapsed_ms(self) -> float:
        return (time.monotonic() - self.start) * 1000.0

    def _identity(self) -> dict[str, Any]:
        return _present(
            remote_agent_url=self.agent_url,
            remote_context_id=self.context_id,
            remote_task_id=self.task_id,
        )

    async def _record(
        self, event: str, level: int, latency_ms: float, extra: Mapping[str, Any]
    ) -> None:
        await self.runtime.record_remote_event(
            event=event,
            node=self.node,
            context=self.ctx,
            trace_id=self.message.trace_id,
            latency_ms=latency_ms,
            level=level,
            extra={**self.base, **extra},
        )

    def _observe(self, context_id: str | None, task_id: str | None, agent_url: str | None) -> None:
        if context_id is not None:
            self.context_id = context_id
        if task_id is not None:
            self.task_id = task_id
        if agent_url is not None:
            self.agent_url = agent_url

    # running

    async def run(self, request: RemoteCallRequest, *, streaming: bool) -> Any:
        """Perform the call; remote errors are recorded and re-raised."""
        await self._record(
            "remote_call_start", logging.DEBUG, 0.0, {"remote_agent_url": request.agent_url}
        )
        try:
            if streaming:
                return await self._stream(request)
            return await self._send(request)
        except (TraceCancelled, asyncio.CancelledError):
            raise
        except Exception as exc:
            await self._record(
                "remote_call_error",
                logging.ERROR,
                self._elapsed_ms(),
                {**self._identity(), "remote_error": repr(exc), "remote_status": "error"},
            )
            raise
        finally:
            await self._cleanup()

    async def _send(self, request: RemoteCallRequest) -> Any:
        result = await self.transport.send(request)
        self._observe(result.context_id, result.task_id, result.agent_url)
        if result.task_id is not None:
            await self._bind(result.context_id, result.task_id, result.agent_url)
        await self._success(_estimate_bytes(result.result) or 0, 0)
        return result.result

    async def _stream(self, request: RemoteCallRequest) -> Any:
        events = self.transport.stream(request)
        if inspect.iscoroutine(events):
            events.close()
            raise TypeError(
                f"{type(self.transport).__name__}.stream() must return an async iterator, "
                "not a coroutine (define it as an async generator, without awaiting)"
            )
        final: Any = None
        response_bytes = 0
        count = 0
        try:
            async for event in events:
                if self.binding is None and event.task_id is not None:
                    await self._bind(event.context_id, event.task_id, event.agent_url)
                self._observe(event.context_id, event.task_id, event.agent_url)
                chunk_bytes = 0
                if event.text is not None:
                    chunk_bytes = len(event.text.encode("utf-8"))
                if event.meta is not None:
                    chunk_bytes += _estimate_bytes(event.meta) or 0
                if event.text is not None:
                    await self.ctx.emit_chunk(
                        parent=self.message,
                        text=event.text,
                        done=event.done,
                        meta=dict(event.meta) if event.meta is not None else None,
                    )
                response_bytes += chunk_bytes
                extra: dict[str, Any] = {**self._identity(), "remote_stream_seq": count}
                if chunk_bytes > 0:
                    extra["remote_chunk_bytes"] = chunk_bytes
                extra["remote_chunk_done"] = event.done
                if event.meta:
                    extra["remote_chunk_meta_keys"] = sorted(event.meta)
                await self._record("remote_stream_event", logging.DEBUG, self._elapsed_ms(), extra)
                count += 1
                if event.result is not None:
                    final = event.result
                    response_bytes += _estimate_bytes(event.result) or 0
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
        await self._success(response_bytes, count)
        return final

    async def _success(self, response_bytes: int, stream_events: int) -> None:
        await self._record(
            "remote_call_success",
            logging.INFO,
            self._elapsed_ms(),
            {
                **self._identity(),
                "remote_response_bytes": response_bytes,
                "remote_stream_events": stream_events,
                "remote_status": "success",
            },
        )

    # binding and cancellation

    async def _bind(self, context_id: str | None, task_id: str, agent_url: str | None) -> None:
        """Record the remote task and arrange for trace cancellation to reach it."""
        reference = agent_url if agent_url is not None else self.configured_url
        binding = self.binding = _Binding(context_id, task_id, reference)
        trace_id = self.message.trace_id
        if self.record_binding:
            await self.runtime.save_remote_binding(
                RemoteBinding(
                    trace_id=trace_id, context_id=context_id, task_id=task_id, agent_url=reference
                )
            )
        trace_event = self.trace_event = self.runtime.ensure_trace_event(trace_id)
        if trace_event.is_set():
            await self._cancel_remote(binding, "pre_cancelled")
            raise TraceCancelled(trace_id)
        self.watcher = asyncio.get_running_loop().create_task(
            self._watch(trace_event, binding), name=f"penguiflow:remote-watch:{task_id}"
        )
        self.runtime.register_external_task(trace_id, self.watcher)

    async def _watch(self, trace_event: asyncio.Event, binding: _Binding) -> None:
        await trace_event.wait()
        await self._cancel_remote(binding, "trace_cancel")

    async def _cancel_remote(self, binding: _Binding, reason: str) -> None:
        identity = _present(
            remote_agent_url=binding.agent_url,
            remote_context_id=binding.context_id,
            remote_task_id=binding.task_id,
        )
        started = time.monotonic()
        try:
            await self.transport.cancel(agent_url=binding.agent_url, task_id=binding.task_id)
        except Exception as exc:
            await self._record(
                "remote_cancel_error",
                logging.ERROR,
                (time.monotonic() - started) * 1000.0,
                {
                    **identity,
                    "remote_cancel_reason": reason,
                    "remote_error": repr(exc),
                    "remote_status": "cancel_error",
                },
            )
            return
        await self._record(
            "remote_call_cancelled",
            logging.INFO,
            (time.monotonic() - started) * 1000.0,
            {**identity, "remote_cancel_reason": reason, "remote_status": "cancelled"},
        )

    async def _cleanup(self) -> None:
        """Settle the watcher: let it finish if the trace was cancelled, else stop it."""
        watcher, trace_event = self.watcher, self.trace_event
        if watcher is None:
            binding = self.binding
            if binding is not None and trace_event is None:
                # Cancelled between learning the task id and starting the watcher
                # (while saving the binding): still tell the remote agent.
                event = self.runtime.ensure_trace_event(self.message.trace_id)
                if event.is_set():
                    await self._cancel_remote(binding, "trace_cancel")
            return
        if trace_event is None or not trace_event.is_set():
            watcher.cancel()
        # `asyncio.wait` never raises the watcher's outcome, only our own cancellation.
        await asyncio.wait((watcher,))
        if not watcher.cancelled():
            watcher.exception()  # mark retrieved; _cancel_remote already reported it


def _present(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def RemoteNode(
    *,
    transport: RemoteTransport,
    skill: str,
    agent_url: str,
    name: str,
    agent_card: Mapping[str, Any] | None = None,
    policy: NodePolicy | None = None,
    streaming: bool = False,
    record_binding: bool = True,
) -> Node:
    """Build a `Node` named `name` that runs `skill` on the agent at `agent_url`.

    The node takes `Message` inputs (anything else raises `TypeError`) and returns
    the remote result unwrapped (`None`: no output). With `streaming=True`, text
    events are forwarded in order as `StreamChunk`s via `ctx.emit_chunk`. Once the
    remote task id is known it is saved as a `RemoteBinding` (unless
    `record_binding=False`) and cancelling the trace calls `transport.cancel`.
    The default policy validates, so a flow run with a registry needs an entry for
    `name`. Retries and timeouts apply as for any node; each attempt is a new call.
    """
    node_policy = policy if policy is not None else NodePolicy()

    async def remote_call(message: Any, ctx: Context) -> Any:
        if not isinstance(message, Message):
            raise TypeError("Remote nodes require penguiflow.types.Message inputs")
        runtime = ctx.runtime
        if runtime is None:
            raise ContextError("Context is not bound to a running PenguiFlow")
        owner = ctx.owner
        if not isinstance(owner, Node):
            raise ContextError("Remote context owner must be a Node")
        request = RemoteCallRequest(
            message=message,
            skill=skill,
            agent_url=agent_url,
            agent_card=agent_card,
            metadata=message.meta,
            timeout_s=owner.policy.timeout_s,
        )
        call = _RemoteCall(
            transport=transport,
            message=message,
            ctx=ctx,
            runtime=runtime,
            node=owner,
            skill=skill,
            agent_url=agent_url,
            streaming=streaming,
            record_binding=record_binding,
        )
        return await call.run(request, streaming=streaming)

    remote_call.__name__ = remote_call.__qualname__ = name
    return Node(remote_call, name=name, policy=node_policy)
