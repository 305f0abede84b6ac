"""The per-node worker: fetch, check deadline/cancellation, invoke with retries, route."""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..errors import FlowError, FlowErrorCode, exception_repr, exception_text
from ..node import Node
from ..types import WM, FinalAnswer, Message
from .controller import DEADLINE_EXCEEDED_TEXT, route_result
from .events import logger
from .hooks import call_hooks
from .inbox import InboxQueue
from .traces import TraceCancelled, current_trace

if TYPE_CHECKING:
    from .context import Context
    from .dispatch import Dispatcher
    from .events import EventSink
    from .hooks import FlowHooks
    from .traces import TraceBook

__all__ = ["NodeWorker"]

_DEBUG = logging.DEBUG
_INFO = logging.INFO
_CONTROL = (WM, FinalAnswer)
_monotonic = time.monotonic  # payloads with controller semantics (see controller.py)


class NodeWorker:
    """Runs one node: one message at a time, in arrival order.

    Trace cancellation interrupts the invocation by cancelling this worker's task
    (told apart from `stop()` with `Task.uncancel`), so no extra task is created
    per message. `trace_id` names the trace whose invocation is running, if any.

    The common case (a message waiting, no retry, a result with room downstream)
    runs without creating any coroutine besides the node's own.
    """

    __slots__ = (
        "_direct",
        "_interrupted",
        "_models",
        "_outgoing",
        "ctx",
        "dispatcher",
        "emit_errors",
        "hooks",
        "node",
        "registry",
        "sink",
        "task",
        "trace_id",
        "traces",
        "warn_output",
    )

    def __init__(
        self,
        node: Node,
        ctx: Context,
        registry: Any,
        *,
        traces: TraceBook,
        dispatcher: Dispatcher,
        sink: EventSink,
        hooks: FlowHooks,
        emit_errors: bool,
    ) -> None:
        self.node = node
        self.ctx = ctx
        self.traces = traces
        self.dispatcher = dispatcher
        self.sink = sink
        self.hooks = hooks
        self.emit_errors = emit_errors
        self.registry = registry
        self.task: asyncio.Task[None] | None = None
        self.trace_id: str | None = None
        self._interrupted = False
        self.warn_output = _registered_for_message_output(registry, node)
        # The models from the registry or the node's type hints, looked up once; without
        # any (or with validate="none") the node function is called directly (the hot path).
        self._models = None if node.policy.validate == "none" else node.models(registry)
        self._direct = node.func if self._models is None else None
        self._outgoing = ctx.outgoing_floes  # the graph is fixed once the flow is built

    def interrupt(self) -> None:
        """Cancel the invocation in progress (called when its trace is cancelled)."""
        task = self.task
        if not self._interrupted and task is not None and not task.done():
            self._interrupted = True
            task.cancel()

    async def run(self) -> None:
        """The worker loop, until `stop()` cancels the task: take a message, check its
        deadline and its trace, invoke the node (retrying per its policy), route the
        result, count the message out of its trace."""
        node, ctx, sink, traces, dispatcher = (
            self.node,
            self.ctx,
            self.sink,
            self.traces,
            self.dispatcher,
        )
        inbox = ctx.inbox
        buffer = inbox.buffer
        queues = inbox.queues
        single = queues[0] if len(queues) == 1 and isinstance(queues[0], InboxQueue) else None
        ready = single.items if single is not None else None
        take = inbox.take
        finalize = traces.finalize
        cancelled = traces.cancelled_ids
        offer = dispatcher.offer
        carry = dispatcher.carry
        outgoing = self._outgoing
        only = outgoing[0] if len(outgoing) == 1 else None
        direct = self._direct
        timeout = node.policy.timeout_s
        task = self.task
        set_trace = current_trace.set
        # `sink.listening(level)`, inline (see EventSink.listening_parts).
        middlewares, event_hooks, stored = sink.listening_parts()
        log_enabled = logger.isEnabledFor
        try:
            while True:
                if buffer:
                    message = buffer.popleft()
                elif single is not None:
                    message = single.take_ready() if ready else await single.get()
                else:
                    message = await take()
                trace_id = getattr(message, "trace_id", None)
                carried = False  # the result took over this message's count
                try:
                    if isinstance(message, Message):
                        deadline = message.deadline_s
                        if deadline is not None and time.time() > deadline:
                            await self._deadline_skip(message, deadline, 0)
                            continue
                    if trace_id is not None and trace_id in cancelled:
                        await sink.emit("trace_cancel_drop", node, ctx, trace_id, 0, None, _INFO)
                        continue
                    set_trace(trace_id)  # this worker task's own context
                    attempt = 0
                    while True:  # one pass per attempt
                        if attempt and trace_id is not None and trace_id in cancelled:
                            raise TraceCancelled(trace_id)
                        start = _monotonic()
                        listening = bool(middlewares or event_hooks or stored or log_enabled(_INFO))
                        if listening and sink.listening(_DEBUG):
                            await sink.emit("node_start", node, ctx, trace_id, attempt, 0.0, _DEBUG)
                        try:
                            call = (
                                direct(message, ctx)
                                if direct is not None
                                else node.invoke_with(self._models, message, ctx)
                            )
                            # While it runs, `interrupt()` (its trace was cancelled)
                            # cancels this task: see `_raise_if_interrupted`.
                            self._interrupted = False
                            self.trace_id = trace_id
                            try:
                                if timeout is None:
                                    result = await call
                                else:
                                    async with asyncio.timeout(timeout):
                                        result = await call
                            except asyncio.CancelledError:
                                self._raise_if_interrupted(trace_id)
                                raise
                            finally:
                                self.trace_id = None
                            if self._interrupted:
                                self._swallowed_interrupt(trace_id)
                            if result is not None:
                                if self.warn_output and not isinstance(result, Message):
                                    self._warn_output(result)
                                if isinstance(result, Message) and isinstance(
                                    result.payload, _CONTROL
                                ):
                                    await self._route_controller(result, message)
                                elif (
                                    only is not None
                                    and not listening
                                    and trace_id is not None
                                    and getattr(result, "trace_id", None) == trace_id
                                    and carry(only, result)
                                ):
                                    carried = True
                                else:
                                    for floe in outgoing:
                                        if not offer(floe, result):
                                            await dispatcher.send(floe, result)
                        except (TraceCancelled, asyncio.CancelledError):
                            raise
                        except Exception as exc:
                            if await self._failed(exc, message, trace_id, attempt, start):
                                attempt += 1
                                continue
                            break
                        if listening:
                            latency = (_monotonic() - start) * 1000.0
                            await sink.emit(
                                "node_success", node, ctx, trace_id, attempt, latency, _INFO
                            )
                        break
                except TraceCancelled:
                    await sink.emit("node_trace_cancelled", node, ctx, trace_id, 0, None, _INFO)
                finally:
                    if trace_id is not None and not carried and finalize(trace_id):
                        await dispatcher.announce_cancel_finish(trace_id)
                if task is not None and task.cancelling():
                    # stop() cancelled us and the node swallowed it: stop all the same.
                    raise asyncio.CancelledError
        except asyncio.CancelledError:
            await sink.emit("node_cancelled", node, ctx, None, 0, None, _DEBUG)
            raise

    async def _deadline_skip(self, message: Message, deadline: float, attempt: int) -> None:
        await self.sink.emit(
            "deadline_skip",
            self.node,
            self.ctx,
            message.trace_id,
            attempt,
            None,
            _INFO,
            extra={"deadline_s": deadline},
        )
        answer = message
        if not isinstance(message.payload, FinalAnswer):
            answer = message.model_copy(
                update={"payload": FinalAnswer(text=DEADLINE_EXCEEDED_TEXT)}
            )
        await self.dispatcher.deliver(answer, self.ctx)

    def _raise_if_interrupted(self, trace_id: str | None) -> None:
        """Turn our task's cancellation into `TraceCancelled` when `interrupt` caused it
        (and `stop()` did not cancel the task as well)."""
        if self._interrupted:
            self._interrupted = False
            task = self.task
            if task is not None and task.uncancel() == 0:
                raise TraceCancelled(trace_id) from None

    def _swallowed_interrupt(self, trace_id: str | None) -> None:
        """The node swallowed the cancellation that `interrupt()` sent: its trace is
        cancelled all the same."""
        self._interrupted = False
        if self.task is not None:
            self.task.uncancel()
        raise TraceCancelled(trace_id)

    async def _failed(
        self, exc: Exception, message: Any, trace_id: str | None, attempt: int, start: float
    ) -> bool:
        """Report a failed attempt; True to retry, False when the message is done."""
        latency = (time.monotonic() - start) * 1000.0
        policy = self.node.policy
        await self._report_error(exc, trace_id, attempt, latency)
        if attempt >= policy.max_retries:
            await self._fail(exc, trace_id, attempt, latency)
            return False
        deadline = message.deadline_s if isinstance(message, Message) else None
        if deadline is not None and time.time() > deadline:
            await self._deadline_skip(message, deadline, attempt)
            return False
        if not await self._backoff(exc, trace_id, attempt + 1, deadline):
            await self._deadline_skip(message, deadline or 0.0, attempt + 1)
            return False
        return True

    async def _report_error(
        self, exc: Exception, trace_id: str | None, attempt: int, latency: float
    ) -> None:
        timed_out = isinstance(exc, TimeoutError)
        await self.sink.emit(
            "node_timeout" if timed_out else "node_error",
            self.node,
            self.ctx,
            trace_id,
            attempt,
            latency,
            logging.WARNING if timed_out else logging.ERROR,
            extra={"exception": exception_repr(exc)},
            exc_info=exc,
        )

    async def _backoff(
        self, exc: Exception, trace_id: str | None, attempt: int, deadline: float | None
    ) -> bool:
        """Sleep before retry `attempt`; False if the deadline passed meanwhile."""
        policy = self.node.policy
        delay = policy.backoff_base * policy.backoff_mult ** max(attempt - 1, 0)
        if policy.max_backoff is not None:
            delay = min(delay, policy.max_backoff)
        await self.sink.emit(
            "node_retry",
            self.node,
            self.ctx,
            trace_id,
            attempt,
            None,
            _INFO,
            extra={"sleep_s": delay, "exception": exception_repr(exc)},
        )
        if deadline is not None:
            # Never sleep past the deadline: wake at it and end the trace there.
            delay = min(delay, max(deadline - time.time(), 0.0) + 0.001)
        await asyncio.sleep(delay)
        return deadline is None or time.time() <= deadline

    def _warn_output(self, result: Any) -> None:
        node = self.node
        warnings.warn(
            f"Node '{node.name or node.node_id}' is registered for Message -> Message "
            f"outputs but returned {type(result).__name__}. Return a "
            "penguiflow.types.Message to preserve headers, trace_id, and meta.",
            RuntimeWarning,
            stacklevel=2,
        )

    async def _route_controller(self, result: Message, incoming: Any) -> None:
        """Controller semantics for a `Message` carrying a `WM` or a `FinalAnswer`."""
        routing = route_result(result, incoming)
        if routing is None:
            await self.ctx.emit(result)
            return
        dispatcher = self.dispatcher
        if routing.to_rookery:
            await dispatcher.deliver(routing.message, self.ctx)
            return
        if routing.snapshot:
            await dispatcher.deliver(routing.message.model_copy(deep=True), self.ctx)
        await self.ctx.emit(routing.message, to=[self.node])

    async def _fail(
        self, exc: Exception, trace_id: str | None, attempt: int, latency: float
    ) -> None:
        node = self.node
        timeout_s = node.policy.timeout_s
        metadata: dict[str, Any] = {"attempt": attempt, "latency_ms": latency}
        if isinstance(exc, TimeoutError):
            code = FlowErrorCode.NODE_TIMEOUT
            text = (
                f"Node '{node.name}' timed out after {timeout_s:.2f}s"
                if timeout_s is not None
                else None
            )
            metadata["timeout_s"] = timeout_s
        else:
            code = FlowErrorCode.NODE_EXCEPTION
            text = f"Node '{node.name}' raised {type(exc).__name__}: {exception_text(exc)}"
            metadata["exception_repr"] = exception_repr(exc)
            if isinstance(exc, ValidationError):
                metadata["validation_errors"] = exc.errors(
                    include_url=False, include_context=False, include_input=False
                )
        error = FlowError.from_exception(
            trace_id=trace_id,
            node_name=node.name,
            node_id=node.node_id,
            exc=exc,
            code=code,
            message=text,
            metadata=metadata,
        )
        extra: dict[str, Any] = {"exception": exception_repr(exc), "flow_error": error.to_payload()}
        delivered = self.emit_errors and error.trace_id is not None
        # A `call()` awaiting the trace gets the error (it raises it).
        claimed = not delivered and self.dispatcher.claim_failure(error)
        if not delivered and not claimed and not self.hooks.node_failed:
            # Nobody gets the error: a caller waiting on fetch() would wait forever.
            extra["undelivered"] = UNDELIVERED_HINT
        await self.sink.emit(
            "node_failed",
            node,
            self.ctx,
            trace_id,
            attempt,
            latency,
            logging.ERROR,
            extra=extra,
            exc_info=exc,
        )
        if delivered:
            await self.dispatcher.deliver(error, self.ctx)
        elif self.hooks.node_failed:
            call_hooks("node_failed", self.hooks.node_failed, error)


UNDELIVERED_HINT = "no result for fetch(); emit_errors_to_rookery=True sends it this error"
"""Logged (key `undelivered`) on a final failure nobody receives; short enough for a
log line's value limit."""


def _registered_for_message_output(registry: Any, node: Node) -> bool:
    models = getattr(registry, "models", None) if registry is not None else None
    if models is None:
        return False
    try:
        _, out_model = models(node.name)
    except KeyError:
        return False  # not registered: the coverage check in run() already decided
    return isinstance(out_model, type) and issubclass(out_model, Message)
