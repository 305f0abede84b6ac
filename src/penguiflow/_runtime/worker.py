"""The per-node worker: fetch, check deadline/cancellation, invoke with retries, route."""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..errors import FlowError, FlowErrorCode
from ..node import Node
from ..types import FinalAnswer, Message
from .controller import DEADLINE_EXCEEDED_TEXT, route_result
from .traces import TraceCancelled, current_trace

if TYPE_CHECKING:
    from .context import Context
    from .flow import PenguiFlow

__all__ = ["NodeWorker"]

_DEBUG = logging.DEBUG
_INFO = logging.INFO


class NodeWorker:
    """Runs one node: one message at a time, in arrival order.

    Trace cancellation interrupts the invocation by cancelling this worker's task
    (told apart from `stop()` with `Task.uncancel`), so no extra task is created
    per message. `trace_id` names the trace whose invocation is running, if any.
    """

    __slots__ = (
        "_direct",
        "_interrupted",
        "ctx",
        "flow",
        "node",
        "registry",
        "task",
        "trace_id",
        "warn_output",
    )

    def __init__(self, node: Node, ctx: Context, flow: PenguiFlow, registry: Any) -> None:
        self.node = node
        self.ctx = ctx
        self.flow = flow
        self.registry = registry
        self.task: asyncio.Task[None] | None = None
        self.trace_id: str | None = None
        self._interrupted = False
        self.warn_output = _registered_for_message_output(registry, node)
        # Without validation the node function is called directly (the hot path).
        self._direct = node.func if registry is None or node.policy.validate == "none" else None

    def interrupt(self) -> None:
        """Cancel the invocation in progress (called when its trace is cancelled)."""
        task = self.task
        if not self._interrupted and task is not None and not task.done():
            self._interrupted = True
            task.cancel()

    async def run(self) -> None:
        flow, node, ctx = self.flow, self.node, self.ctx
        take = ctx._take
        traces = flow._traces
        task = self.task
        try:
            while True:
                message = await take()
                trace_id = getattr(message, "trace_id", None)
                try:
                    if isinstance(message, Message):
                        deadline = message.deadline_s
                        if deadline is not None and time.time() > deadline:
                            await self._deadline_skip(message, deadline, 0)
                            continue
                    if trace_id is not None:
                        state = traces.get(trace_id)
                        if state is not None and state.event is not None and state.event.is_set():
                            await flow._emit_event(
                                "trace_cancel_drop", node, ctx, trace_id, 0, None, _INFO
                            )
                            continue
                    try:
                        await self._envelope(message, trace_id)
                    except TraceCancelled:
                        await flow._emit_event(
                            "node_trace_cancelled", node, ctx, trace_id, 0, None, _INFO
                        )
                finally:
                    if trace_id is not None and flow._finalize(trace_id):
                        await flow._emit_cancel_finish(trace_id)
                if task is not None and task.cancelling():
                    # stop() cancelled us and the node swallowed it: stop all the same.
                    raise asyncio.CancelledError
        except asyncio.CancelledError:
            await flow._emit_event("node_cancelled", node, ctx, None, 0, None, _DEBUG)
            raise

    async def _deadline_skip(self, message: Message, deadline: float, attempt: int) -> None:
        await self.flow._emit_event(
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
        await self.flow._deliver_to_rookery(answer, self.node)

    async def _envelope(self, message: Any, trace_id: str | None) -> None:
        flow, node, ctx = self.flow, self.node, self.ctx
        current_trace.set(trace_id)  # this worker task's own context
        policy = node.policy
        attempt = 0
        while True:
            if attempt and trace_id is not None:
                state = flow._traces.get(trace_id)
                if state is not None and state.cancelled:
                    raise TraceCancelled(trace_id)
            start = time.monotonic()
            listening = flow._listening(_INFO)
            if listening and flow._listening(_DEBUG):
                await flow._emit_event("node_start", node, ctx, trace_id, attempt, 0.0, _DEBUG)
            try:
                result = await self._invoke(message, trace_id, policy.timeout_s)
                if result is not None:
                    await self._route(result, message)
            except (TraceCancelled, asyncio.CancelledError):
                raise
            except Exception as exc:
                latency = (time.monotonic() - start) * 1000.0
                if attempt >= policy.max_retries:
                    await self._report_error(exc, trace_id, attempt, latency)
                    await self._fail(exc, trace_id, attempt, latency)
                    return
                await self._report_error(exc, trace_id, attempt, latency)
                deadline = message.deadline_s if isinstance(message, Message) else None
                if deadline is not None and time.time() > deadline:
                    await self._deadline_skip(message, deadline, attempt)
                    return
                attempt += 1
                if not await self._backoff(exc, trace_id, attempt, deadline):
                    await self._deadline_skip(message, deadline or 0.0, attempt)
                    return
                continue
            if listening:
                latency = (time.monotonic() - start) * 1000.0
                await flow._emit_event("node_success", node, ctx, trace_id, attempt, latency, _INFO)
            return

    async def _report_error(
        self, exc: Exception, trace_id: str | None, attempt: int, latency: float
    ) -> None:
        timed_out = isinstance(exc, TimeoutError)
        await self.flow._emit_event(
            "node_timeout" if timed_out else "node_error",
            self.node,
            self.ctx,
            trace_id,
            attempt,
            latency,
            logging.WARNING if timed_out else logging.ERROR,
            extra={"exception": repr(exc)},
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
        await self.flow._emit_event(
            "node_retry",
            self.node,
            self.ctx,
            trace_id,
            attempt,
            None,
            _INFO,
            extra={"sleep_s": delay, "exception": repr(exc)},
        )
        if deadline is not None:
            # Never sleep past the deadline: wake at it and end the trace there.
            delay = min(delay, max(deadline - time.time(), 0.0) + 0.001)
        await asyncio.sleep(delay)
        return deadline is None or time.time() <= deadline

    async def _invoke(self, message: Any, trace_id: str | None, timeout: float | None) -> Any:
        direct = self._direct
        call = (
            direct(message, self.ctx)
            if direct is not None
            else self.node.invoke(message, self.ctx, registry=self.registry)
        )
        if trace_id is None:
            if timeout is None:
                return await call
            async with asyncio.timeout(timeout):
                return await call
        self._interrupted = False
        self.trace_id = trace_id
        try:
            if timeout is None:
                result = await call
            else:
                async with asyncio.timeout(timeout):
                    result = await call
        except asyncio.CancelledError:
            if self._interrupted:
                self._interrupted = False
                task = self.task
                if task is not None and task.uncancel() == 0:
                    raise TraceCancelled(trace_id) from None
            raise
        finally:
            self.trace_id = None
        if self._interrupted:
            # The node swallowed the cancellation; its trace is cancelled all the same.
            self._interrupted = False
            if self.task is not None:
                self.task.uncancel()
            raise TraceCancelled(trace_id)
        return result

    async def _route(self, result: Any, incoming: Any) -> None:
        node = self.node
        if self.warn_output and not isinstance(result, Message):
            warnings.warn(
                f"Node '{node.name or node.node_id}' is registered for Message -> Message "
                f"outputs but returned {type(result).__name__}. Return a "
                "penguiflow.types.Message to preserve headers, trace_id, and meta.",
                RuntimeWarning,
                stacklevel=2,
            )
        routing = route_result(result, incoming)
        if routing is None:
            await self.ctx.emit(result)
            return
        if routing.to_rookery:
            await self.flow._deliver_to_rookery(routing.message, node)
            return
        if routing.snapshot:
            await self.flow._deliver_to_rookery(routing.message.model_copy(deep=True), node)
        await self.ctx.emit(routing.message, to=[node])

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
            text = f"Node '{node.name}' raised {type(exc).__name__}: {exc}"
            metadata["exception_repr"] = repr(exc)
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
        await self.flow._emit_event(
            "node_failed",
            node,
            self.ctx,
            trace_id,
            attempt,
            latency,
            logging.ERROR,
            extra={"exception": repr(exc), "flow_error": error.to_payload()},
            exc_info=exc,
        )
        if self.flow._emit_errors_to_rookery and error.trace_id is not None:
            await self.flow._deliver_to_rookery(error, node)
        elif self.flow._failure_observer is not None:
            self.flow._failure_observer(error)


def _registered_for_message_output(registry: Any, node: Node) -> bool:
    models = getattr(registry, "models", None) if registry is not None else None
    if models is None:
        return False
    try:
        _, out_model = models(node.name)
    except KeyError:
        return False  # not registered: the coverage check in run() already decided
    return isinstance(out_model, type) and issubclass(out_model, Message)
