"""`A2AServerAdapter`: serves a running `PenguiFlow` to A2A requests.

The adapter owns the flow's lifecycle (`start`/`stop`), turns each request into a
traced `Message`, and routes what the flow delivers to Rookery back to the request
that owns the trace. Attribution is exact: through the flow's public hook lists
(`flow.hooks`) the runtime tells the adapter which trace produced every Rookery
item (also plain values without a trace id, which are wrapped in `RookeryResult`),
which node failed for good, which trace was cancelled and which has drained, so
results are never guessed from activity and a failing node does not leave its
request hanging.

Any object with the spec'd flow methods (`run`, `stop`, `emit`, `fetch`, `cancel`,
`save_remote_binding`) can be served. Without `hooks` the adapter degrades, and says
so in a warning: results without a trace id cannot be attributed, and a failed node
or a trace that ends without a result is only noticed at `result_timeout_s`.

Trace context: a request's W3C `traceparent` (its HTTP header, else its `meta`) is
put into the message's `meta["traceparent"]` and adopted for its flow trace
(`penguiflow.tracing.propagation.adopt`), so the flow's spans join the caller's trace.

HTTP apps are built by `create_a2a_app` (FastAPI, imported lazily).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from penguiflow.core import PenguiFlow
from penguiflow.errors import FlowError, InvalidArgumentError, PenguiflowError, exception_text
from penguiflow.observation import FlowHooks, RookeryDelivery
from penguiflow.state import RemoteBinding, TaskStore
from penguiflow.tracing.propagation import adopt, extract, incoming_traceparent
from penguiflow.types import Headers, Message, StreamChunk

from .auth import Principal
from .models import A2AAgentCard, A2AMessagePayload, A2ASkill, A2ATaskCancelRequest
from .replicas import DEFAULT_POLL_S, TaskSync
from .sse import chunk_frame, comment_frame, event_frame
from .tasks import (
    DEFAULT_MAX_FINISHED_BYTES,
    TERMINAL_STATES,
    EventLog,
    Outcome,
    StreamItem,
    TaskRecord,
    TaskTable,
    outcome_error,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "A2AAgentCard",
    "A2AMessagePayload",
    "A2ARequestError",
    "A2AServerAdapter",
    "A2ASkill",
    "RookeryResult",
    "create_a2a_app",
]

logger = logging.getLogger("penguiflow_a2a")

DEFAULT_RESULT_TIMEOUT_S = 300.0
DEFAULT_RESUBSCRIBE_GRACE_S = 30.0
"""How long a task whose stream dropped keeps running with nobody attached."""
RESUME_TOKEN_META = "a2a_resume_token"
"""The `Message.meta` key holding the resume token of a follow-up to a paused task."""
DEFAULT_TENANT = "default"
"""The tenant of a request that names none, from a caller with no tenant of its own."""


class A2ARequestError(PenguiflowError):
    """A request the adapter refuses; the app turns it into an HTTP error."""

    def __init__(self, *, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


@dataclass(slots=True)
class RookeryResult:
    """A result without a trace id of its own, tagged with the trace that produced it."""

    trace_id: str
    value: Any


def _convert_output(value: Any) -> Any:
    """Models → `model_dump()`, mappings → dict, sequences and sets → list, recursively."""
    if isinstance(value, BaseModel):
        return _convert_output(value.model_dump())
    if isinstance(value, RookeryResult):
        return _convert_output(value.value)
    if isinstance(value, Mapping):
        return {key: _convert_output(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_convert_output(item) for item in value]
    return value


def _is_pause(value: Any) -> bool:
    """Whether `value` is a `PlannerPause`; without importing the planner (a value
    cannot be one unless the planner was imported)."""
    models = sys.modules.get("penguiflow.planner.models")
    pause = getattr(models, "PlannerPause", None)
    return pause is not None and isinstance(value, pause)


def _owner(principal: Principal | None) -> str | None:
    return None if principal is None else principal.owner


class A2AServerAdapter:
    """Serves `flow` to A2A requests; see `create_a2a_app` for the HTTP side.

    Beyond the spec: `result_timeout_s` bounds how long a request waits for the
    flow's answer (the trace is cancelled when it runs out; `None` waits forever),
    `max_finished_tasks` and `max_finished_bytes` (measured as JSON) bound the
    history kept for `tasks/get` (a finished task keeps only what that answers),
    `stream_heartbeat_s` sends an SSE comment on idle streams, and
    `resubscribe_grace_s` is how long a task whose JSON-RPC stream dropped keeps
    running with nobody attached (a client may `tasks/resubscribe` meanwhile)
    before it is cancelled.

    `task_store` (a `penguiflow.state.TaskStore`, such as any store of
    `penguiflow.state`) shares the task records with the other replicas of this
    server: each answers `tasks/get`, `tasks/cancel` and `tasks/resubscribe` for
    tasks that another runs. `replica` names this process (default: host, pid and a
    random suffix); `task_poll_s` is how often it takes the cancel requests that
    others queued for it.
    """

    def __init__(
        self,
        flow: PenguiFlow,
        *,
        agent_card: A2AAgentCard | Mapping[str, Any],
        agent_url: str,
        target: Sequence[Any] | Any | None = None,
        registry: Any | None = None,
        default_headers: Mapping[str, Any] | None = None,
        result_timeout_s: float | None = DEFAULT_RESULT_TIMEOUT_S,
        max_finished_tasks: int = 10_000,
        stream_heartbeat_s: float | None = 15.0,
        max_finished_bytes: int = DEFAULT_MAX_FINISHED_BYTES,
        resubscribe_grace_s: float = DEFAULT_RESUBSCRIBE_GRACE_S,
        task_store: TaskStore | None = None,
        replica: str | None = None,
        task_poll_s: float = DEFAULT_POLL_S,
    ) -> None:
        if isinstance(agent_card, A2AAgentCard):
            self.agent_card = agent_card
        else:
            self.agent_card = A2AAgentCard.model_validate(agent_card)
        if result_timeout_s is not None and not result_timeout_s > 0:
            raise InvalidArgumentError(
                f"result_timeout_s must be > 0 or None, got {result_timeout_s!r}"
            )
        if not resubscribe_grace_s >= 0:
            raise InvalidArgumentError(
                f"resubscribe_grace_s must be >= 0, got {resubscribe_grace_s!r}"
            )
        if not task_poll_s > 0:
            raise InvalidArgumentError(f"task_poll_s must be > 0, got {task_poll_s!r}")
        self.agent_url = agent_url
        self._grace_s = resubscribe_grace_s
        self._sync = (
            None
            if task_store is None
            else TaskSync(task_store, replica=replica, poll_s=task_poll_s)
        )
        self._cancel_watcher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._flow = flow
        self._target = target
        self._registry = registry
        self._default_headers = dict(default_headers or {})
        self._result_timeout_s = result_timeout_s
        self._heartbeat_s = stream_heartbeat_s
        self._tasks = TaskTable(max_finished_tasks, max_finished_bytes)
        self._in_transit: dict[str, int] = {}
        self._dispatcher: asyncio.Task[None] | None = None
        self._started = False
        self._stopping = False
        hooks = getattr(flow, "hooks", None)
        self._hooks: FlowHooks | None = hooks if isinstance(hooks, FlowHooks) else None
        if self._hooks is None:
            logger.warning(
                "a2a: %s offers no observation hooks (flow.hooks): results without a "
                "trace id are dropped, and a failed node or a trace that ends without a "
                "result is only noticed after result_timeout_s=%s",
                type(flow).__name__,
                result_timeout_s,
            )

    @property
    def flow(self) -> PenguiFlow:
        """The flow this adapter serves."""
        return self._flow

    # -- attribution -----------------------------------------------------------------

    def _subscriptions(self, hooks: FlowHooks) -> list[tuple[list[Any], Any]]:
        return [
            (hooks.rookery, self._on_rookery),
            (hooks.node_failed, self._on_failure),
            (hooks.trace_cancelled, self._on_cancelled),
            (hooks.trace_done, self._on_trace_done),
        ]

    def _attach(self) -> None:
        if self._hooks is not None:
            for hooks, hook in self._subscriptions(self._hooks):
                hooks.append(hook)

    def _detach(self) -> None:
        if self._hooks is not None:
            for hooks, hook in self._subscriptions(self._hooks):
                hooks.remove(hook)

    def _on_rookery(self, delivery: RookeryDelivery) -> None:
        trace_id = delivery.trace_id
        if trace_id is None:
            return
        if getattr(delivery.item, "trace_id", None) is None:
            delivery.item = RookeryResult(trace_id, delivery.item)
        if trace_id in self._tasks.by_trace:
            self._in_transit[trace_id] = self._in_transit.get(trace_id, 0) + 1

    def _on_failure(self, error: FlowError) -> None:
        record = self._tasks.by_trace.get(error.trace_id or "")
        if record is not None:
            record.put(error)

    def _on_cancelled(self, trace_id: str) -> None:
        record = self._tasks.by_trace.get(trace_id)
        if record is not None:
            record.mark_cancelled()

    def _on_trace_done(self, trace_id: str) -> None:
        record = self._tasks.by_trace.get(trace_id)
        if record is not None:
            record.wake()  # the request re-checks: its trace may have ended without a result

    async def _dispatch(self) -> None:
        """Move every Rookery item to the request owning its trace."""
        flow = self._flow
        while True:
            try:
                item = await flow.fetch()
            except Exception:
                # Never let the dispatcher die silently: waiting requests would hang.
                logger.exception("a2a: fetching a result from the flow failed")
                await asyncio.sleep(0.05)
                continue
            trace_id = getattr(item, "trace_id", None)
            if trace_id is None:
                logger.warning(
                    "a2a: dropped a Rookery item not produced by a request's trace: %s",
                    type(item).__name__,
                )
                continue
            count = self._in_transit.get(trace_id)
            if count is not None:
                if count <= 1:
                    del self._in_transit[trace_id]
                else:
                    self._in_transit[trace_id] = count - 1
            record = self._tasks.by_trace.get(trace_id)
            if record is None:
                logger.debug("a2a: dropped a result for trace %s: no request waits", trace_id)
                continue
            record.put(item)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether `start()` ran (and `stop()` has not)."""
        return self._started

    async def start(self) -> None:
        """Run the flow and the result dispatcher; idempotent."""
        if self._started:
            return
        self._flow.run(registry=self._registry)
        self._attach()
        self._started = True
        self._dispatcher = asyncio.get_running_loop().create_task(
            self._dispatch(), name="penguiflow_a2a:dispatcher"
        )
        if self._sync is not None:
            self._cancel_watcher = asyncio.get_running_loop().create_task(
                self._take_cancels(self._sync), name="penguiflow_a2a:cancel-requests"
            )

    async def stop(self) -> None:
        """Stop the flow; waiting requests get `flow is shutting down`. Idempotent."""
        if not self._started:
            return
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            dispatcher.cancel()
        self._stopping = True
        watcher, self._cancel_watcher = self._cancel_watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        try:
            await self._flow.stop()
        finally:
            if dispatcher is not None:
                await asyncio.gather(dispatcher, return_exceptions=True)
            self._started = False
            self._stopping = False
            self._detach()
            for record in self._tasks.clear():
                record.finish(
                    "failed", Outcome("shutdown", error={"message": "flow is shutting down"})
                )
                record.wake()
                runner = record.runner
                if runner is not None and not runner.done():
                    runner.cancel()
            self._in_transit.clear()
            if self._background:
                await asyncio.gather(*self._background, return_exceptions=True)

    # -- requests --------------------------------------------------------------------

    def prepare(
        self,
        request: A2AMessagePayload,
        *,
        principal: Principal | None = None,
        a2a_message: dict[str, Any] | None = None,
        default_tenant: str | None = None,
    ) -> TaskRecord:
        """Register a task for `request` without running it (errors: `A2ARequestError`).

        `a2a_message` is the A2A message that asked for it (kept as its history). The
        tenant is the principal's, else the request's or `default_headers`', else
        `default_tenant` when given (standard A2A clients send no penguiflow headers),
        else missing: a 422, as specified for the penguiflow routes.
        """
        if not self._started:
            raise A2ARequestError(status_code=503, detail="flow is not running")
        merged = {**self._default_headers, **dict(request.headers)}
        if principal is not None and principal.tenant is not None:
            merged["tenant"] = principal.tenant
        elif "tenant" not in merged and default_tenant is not None:
            merged["tenant"] = default_tenant
        try:
            headers = Headers.model_validate(merged)
        except ValidationError as exc:
            raise A2ARequestError(status_code=422, detail=str(exc)) from None
        trace_id = request.trace_id if request.trace_id is not None else uuid.uuid4().hex
        message = Message(
            payload=request.payload,
            headers=headers,
            trace_id=trace_id,
            deadline_s=request.deadline_s,
        )
        if request.meta:
            message.meta.update(request.meta)
        traceparent = incoming_traceparent.get() or extract(request.meta)
        if traceparent is not None:
            message.meta["traceparent"] = traceparent
        context_id = request.context_id or trace_id
        task_id = request.task_id or trace_id or uuid.uuid4().hex
        tasks = self._tasks
        if task_id in tasks.active:
            raise A2ARequestError(status_code=409, detail=f"task {task_id!r} already active")
        if trace_id in tasks.by_trace:
            # Checked before anything is registered, so the conflict leaves no trace
            # of itself behind (the task id stays free).
            raise A2ARequestError(status_code=409, detail=f"trace {trace_id!r} already active")
        record = TaskRecord(
            task_id=task_id,
            context_id=context_id,
            trace_id=trace_id,
            owner=_owner(principal),
            message=message,
            request=a2a_message,
        )
        tasks.register(record)
        if self._hooks is not None and self._flow.trace_status(trace_id).cancelled:
            record.mark_cancelled()  # the trace id's earlier cancellation is still draining
        return record

    async def _bind(self, record: TaskRecord) -> None:
        binding = RemoteBinding(
            trace_id=record.trace_id,
            context_id=record.context_id,
            task_id=record.task_id,
            agent_url=self.agent_url,
        )
        await self._flow.save_remote_binding(binding)

    def _release(self, record: TaskRecord) -> None:
        self._tasks.release(record)
        self._in_transit.pop(record.trace_id, None)
        evicted = self._tasks.take_evicted()
        if evicted and self._sync is not None:
            forget = asyncio.get_running_loop().create_task(self._sync.forget(evicted))
            self._background.add(forget)
            forget.add_done_callback(self._background.discard)

    async def share_task(self, record: TaskRecord) -> None:
        """Write a task this replica runs to the `task_store` now, so that every
        replica sees it from this moment (nothing without a `task_store`, nor when
        its state has not changed since it was last written)."""
        if self._sync is not None and record.replica is None:
            await self._sync.save(record)

    async def _take_cancels(self, sync: TaskSync) -> None:
        """Cancel the tasks that other replicas were asked to cancel, until `stop()`.

        The loop ends on `_stopping` as well as on cancellation: Python 3.11's
        `asyncio.wait_for` (under the store calls) can swallow a cancellation that
        arrives as the call completes."""
        while not self._stopping:
            await asyncio.sleep(sync.poll_s)
            for task_id in await sync.take_cancels():
                record = self._tasks.active.get(task_id) or self._tasks.finished.get(task_id)
                if record is None:
                    continue
                logger.info("a2a: task %s cancelled from another replica", task_id)
                try:
                    await self.cancel_task(record)
                except Exception as exc:  # one failed cancel must not stop the watcher
                    logger.warning(
                        "a2a: could not cancel task %s for another replica: %s",
                        task_id,
                        exception_text(exc),
                    )

    def _deadline(self, record: TaskRecord) -> float | None:
        limits = []
        if self._result_timeout_s is not None:
            limits.append(time.monotonic() + self._result_timeout_s)
        if record.message.deadline_s is not None:
            # A little grace: the runtime itself answers an expired deadline.
            remaining = record.message.deadline_s - time.time()
            limits.append(time.monotonic() + max(remaining, 0.0) + 1.0)
        return min(limits) if limits else None

    async def _next(
        self, record: TaskRecord, deadline: float | None, heartbeat: float | None
    ) -> StreamItem:
        """Wait for the task's next chunk or its outcome (or a heartbeat's worth)."""
        flow = self._flow
        while True:
            if record.items:
                item = record.items.popleft()
                outcome = self._classify(item)
                if outcome is None:
                    payload = getattr(item, "payload", item)
                    return StreamItem(chunk=payload)
                return StreamItem(outcome=outcome)
            if record.cancelled:
                return StreamItem(outcome=Outcome("cancelled"))
            if self._stopping or not self._started or record.state == "failed":
                return StreamItem(outcome=record.outcome or Outcome("shutdown"))
            if (
                self._hooks is not None
                and flow.trace_status(record.trace_id).done
                and not self._in_transit.get(record.trace_id)
            ):
                return StreamItem(outcome=Outcome("no_result"))
            waiter = record.new_waiter()
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                return StreamItem(outcome=Outcome("timeout"))
            beat = heartbeat is not None and (timeout is None or heartbeat < timeout)
            try:
                await asyncio.wait_for(waiter, heartbeat if beat else timeout)
            except TimeoutError:
                if beat:
                    return StreamItem()
                return StreamItem(outcome=Outcome("timeout"))

    def _classify(self, item: Any) -> Outcome | None:
        """`None` for a chunk; otherwise how the item ends the task."""
        if isinstance(item, FlowError):
            error = item.to_payload()
            error.setdefault("trace_id", item.trace_id)
            return Outcome("failed", error=error)
        if isinstance(item, BaseException):
            return Outcome("internal", error={"message": str(item) or type(item).__name__})
        payload = item.payload if hasattr(item, "payload") else item
        if isinstance(payload, StreamChunk):
            return None
        if _is_pause(payload):
            return Outcome(
                "paused",
                output=_convert_output(payload.model_dump(exclude={"resume_token"})),
                resume_token=payload.resume_token,
            )
        if isinstance(item, RookeryResult):
            return Outcome("result", output=_convert_output(item.value))
        meta = {
            key: value
            for key, value in (getattr(item, "meta", None) or {}).items()
            if key != RESUME_TOKEN_META  # a used token is nobody's business
        }
        return Outcome("result", output=_convert_output(payload), meta=meta or None)

    async def run_task(
        self, record: TaskRecord, *, heartbeat_s: float | None = None
    ) -> AsyncGenerator[StreamItem, None]:
        """Emit the task's message; yield `accepted`, its chunks, then its outcome.

        Closing the iterator before the outcome (a client gone) cancels the trace.
        The task is always released on exit. With `heartbeat_s`, an empty item is
        yielded whenever that long passes without anything else.
        """
        finished = False
        record.started = True
        try:
            await self.share_task(record)
            await self._bind(record)
            # The caller's trace context becomes the remote parent of this flow trace.
            adopt(record.trace_id, extract(record.message.meta))
            try:
                await self._flow.emit(record.message, to=self._target)
            except Exception as exc:
                finished = True
                outcome = Outcome("internal", error={"message": str(exc) or type(exc).__name__})
                record.finish("failed", outcome)
                await self.share_task(record)
                yield StreamItem(outcome=outcome)
                return
            record.state = "working"
            await self.share_task(record)
            yield StreamItem(accepted=True)
            deadline = self._deadline(record)
            while True:
                step = await self._next(record, deadline, heartbeat_s)
                if step.outcome is None:
                    yield step
                    continue
                outcome = step.outcome
                if outcome.kind == "timeout":
                    await self._cancel_trace(record)
                finished = True
                record.finish(_STATE_OF[outcome.kind], outcome)
                record.resume_token = outcome.resume_token
                await self.share_task(record)  # other replicas know before the client does
                yield step
                return
        finally:
            if not finished:
                record.finish("canceled", Outcome("cancelled"))
                await self._cancel_trace(record)
                await self.share_task(record)
            self._release(record)

    async def _cancel_trace(self, record: TaskRecord) -> None:
        if not self._started:
            return
        try:
            await self._flow.cancel(record.trace_id)
        except RuntimeError as exc:  # the flow was stopped behind the adapter's back
            logger.warning("a2a: could not cancel trace %s: %s", record.trace_id, exc)

    # -- spec surface ----------------------------------------------------------------

    async def handle_send(
        self, request: A2AMessagePayload, *, principal: Principal | None = None
    ) -> dict[str, Any]:
        """Run one request to its first result; see the spec for the response shapes."""
        record = self.prepare(request, principal=principal)
        outcome = Outcome("no_result")
        async for step in self.run_task(record):
            if step.outcome is not None:
                outcome = step.outcome
        return self._send_response(record, outcome)

    def _send_response(self, record: TaskRecord, outcome: Outcome) -> dict[str, Any]:
        ids = {"taskId": record.task_id, "contextId": record.context_id, "traceId": record.trace_id}
        kind = outcome.kind
        if kind in ("result", "no_result", "paused"):
            body: dict[str, Any] = {"status": "succeeded", **ids, "output": _spec_output(outcome)}
            if outcome.meta:
                body["meta"] = outcome.meta
            return body
        if kind == "cancelled":
            return {"status": "cancelled", **ids}
        if kind == "failed":
            return {"status": "failed", **ids, "error": outcome.error}
        if kind == "shutdown":
            raise A2ARequestError(status_code=503, detail="flow is shutting down")
        if kind == "timeout":
            raise A2ARequestError(
                status_code=504,
                detail=f"no result for task {record.task_id!r} within the time limit",
            )
        message = (outcome.error or {}).get("message", "")
        raise A2ARequestError(status_code=500, detail=f"flow execution failed: {message}")

    async def stream(
        self, request: A2AMessagePayload, *, principal: Principal | None = None
    ) -> tuple[AsyncIterator[bytes], str, str]:
        """Prepare a request now; return `(SSE byte frames, taskId, contextId)`."""
        record = self.prepare(request, principal=principal)
        return self.guard_unstarted(self._sse(record), record), record.task_id, record.context_id

    def guard_unstarted(
        self, frames: AsyncIterator[bytes], record: TaskRecord
    ) -> AsyncIterator[bytes]:
        """Release `record` if `frames` is garbage-collected without ever being iterated
        (a client gone before the response started): nothing was emitted, so nothing
        runs, and the task must not stay registered."""
        weakref.finalize(frames, self._abandon_if_unstarted, record)
        return frames

    def _abandon_if_unstarted(self, record: TaskRecord) -> None:
        if not record.released and not record.started:
            record.finish("canceled", Outcome("cancelled"))
            self._release(record)

    async def _sse(self, record: TaskRecord) -> AsyncIterator[bytes]:
        ids = {"taskId": record.task_id, "contextId": record.context_id}
        steps = self.run_task(record, heartbeat_s=self._heartbeat_s)
        try:
            async for step in steps:
                if step.accepted:
                    yield event_frame("status", {"status": "accepted", **ids})
                    continue
                if step.chunk is not None:
                    yield chunk_frame(
                        step.chunk, task_id=record.task_id, context_id=record.context_id
                    )
                    continue
                outcome = step.outcome
                if outcome is None:
                    yield comment_frame()
                    continue
                if outcome.kind in ("result", "no_result", "paused"):
                    yield event_frame("artifact", {**ids, "output": _spec_output(outcome)})
                elif outcome.kind == "failed":
                    yield event_frame("error", {**outcome_error(outcome), **ids})
                else:
                    yield event_frame("error", {**ids, **outcome_error(outcome)})
                yield event_frame("done", ids)
        finally:
            await steps.aclose()

    async def cancel(
        self, request: A2ATaskCancelRequest, *, principal: Principal | None = None
    ) -> dict[str, Any]:
        """Cancel a running task's trace. Unknown (or another tenant's) task: 404."""
        if not self._started:
            raise A2ARequestError(status_code=503, detail="flow is not running")
        record = self._tasks.lookup(request.task_id, _owner(principal))
        if record is None:
            raise A2ARequestError(status_code=404, detail=f"task {request.task_id!r} not found")
        cancelled = False if record.released else await self._flow.cancel(record.trace_id)
        if cancelled:
            record.mark_cancelled()
        return {
            "taskId": record.task_id,
            "cancelled": cancelled,
            "traceId": record.trace_id,
            "contextId": record.context_id,
        }

    # -- beyond the spec: used by the JSON-RPC endpoint ------------------------------

    def get_task(self, task_id: str, *, principal: Principal | None = None) -> TaskRecord | None:
        """A task of this replica visible to `principal` (active or recently
        finished), else `None`."""
        return self._tasks.lookup(task_id, _owner(principal))

    async def find_task(
        self, task_id: str, *, principal: Principal | None = None
    ) -> TaskRecord | None:
        """A task visible to `principal`, on this replica or (with a `task_store`)
        on another one, as its shared record says; else `None`."""
        record = self._tasks.lookup(task_id, _owner(principal))
        if record is None and self._sync is not None:
            record = await self._sync.load(task_id, _owner(principal))
        return record

    async def watch_remote(self, record: TaskRecord) -> AsyncGenerator[TaskRecord, None]:
        """Another replica's task each time its shared record changes state, until
        it ends or waits for input (nothing without a `task_store`)."""
        if self._sync is None:
            return
        async for current in self._sync.watch(record):
            yield current

    @property
    def replica(self) -> str | None:
        """This process's name among the replicas sharing a `task_store`."""
        return None if self._sync is None else self._sync.replica

    @property
    def task_store_errors(self) -> int:
        """How many calls to the `task_store` failed (each logged; no task failed)."""
        return 0 if self._sync is None else self._sync.errors

    async def cancel_task(self, record: TaskRecord) -> bool:
        """Cancel a task's trace (or a task waiting for input); `False` if it had
        already finished."""
        if record.replica is not None:  # another replica runs it: ask that one
            if record.state in TERMINAL_STATES or self._sync is None:
                return False
            ended = await self._sync.request_cancel(record)
            if ended is None:
                return False
            record.state, record.outcome = ended.state, ended.outcome
            return ended.state == "canceled"
        if record.state == "input-required" and record.released:
            record.state = "canceled"
            record.outcome = Outcome("cancelled")
            record.resume_token = None
            await self.share_task(record)
            return True
        if record.released or not self._started:
            return False
        record.mark_cancelled()
        await self._flow.cancel(record.trace_id)
        return True

    def start_background(self, record: TaskRecord) -> EventLog:
        """Run a task's turn in the background, every step into `record.log`.

        Streams and resubscriptions follow that log (`follow`); the task does not
        depend on any of them staying attached.
        """
        log = record.log = EventLog()

        async def drain() -> None:
            try:
                async for step in self.run_task(record):
                    log.append(step)
            finally:
                log.close()

        record.runner = asyncio.get_running_loop().create_task(
            drain(), name=f"penguiflow_a2a:task:{record.task_id}"
        )
        return log

    async def follow(
        self, record: TaskRecord, *, heartbeat_s: float | None = None
    ) -> AsyncGenerator[StreamItem, None]:
        """Every step of the task's current turn from its start, then the new ones as
        they come; nothing for a task that has no turn running (`tasks/get` tells
        where it stands).

        When the last follower of a running task goes, the task keeps running for
        `resubscribe_grace_s`; if nobody attaches again within it, it is cancelled.
        """
        log = record.log
        if log is None or log.closed:
            return
        record.cancel_grace()
        steps = log.follow(heartbeat_s=heartbeat_s)
        try:
            async for step in steps:
                yield step
        finally:
            await steps.aclose()
            if log.followers == 0 and not log.closed:
                record.grace = asyncio.get_running_loop().call_later(
                    self._grace_s, self._grace_expired, record, log
                )

    def _grace_expired(self, record: TaskRecord, log: EventLog) -> None:
        record.grace = None
        if log.followers or log.closed or record.released:
            return
        logger.info(
            "a2a: task %s had nobody attached for %ss: cancelling it",
            record.task_id,
            self._grace_s,
        )
        record.mark_cancelled()
        asyncio.get_running_loop().create_task(self._cancel_trace(record))

    def continue_task(
        self,
        record: TaskRecord,
        request: A2AMessagePayload,
        *,
        a2a_message: dict[str, Any] | None = None,
        agent_message: dict[str, Any] | None = None,
    ) -> TaskRecord:
        """Start the next turn of a task waiting for input (`input-required`).

        The follow-up goes to the flow as a new trace of the same task: its payload
        is the user's answer, `meta[RESUME_TOKEN_META]` the paused planner's token
        (see `planner_node`). `agent_message` (the pause as the agent said it) and
        the previous request join the task's history.
        """
        if not self._started:
            raise A2ARequestError(status_code=503, detail="flow is not running")
        if record.replica is not None and record.state == "input-required":
            raise A2ARequestError(
                status_code=409,
                detail=f"task {record.task_id!r} waits for input on replica "
                f"{record.replica!r}, which holds its resume token: send the follow-up there",
            )
        if record.state != "input-required" or record.resume_token is None:
            raise A2ARequestError(
                status_code=409,
                detail=f"task {record.task_id!r} is {record.state}, not waiting for input",
            )
        trace_id = uuid.uuid4().hex
        message = Message(
            payload=request.payload,
            headers=record.message.headers,
            trace_id=trace_id,
            deadline_s=request.deadline_s,
        )
        message.meta.update(request.meta or {})
        message.meta[RESUME_TOKEN_META] = record.resume_token
        traceparent = incoming_traceparent.get() or extract(request.meta)
        if traceparent is not None:
            message.meta["traceparent"] = traceparent
        if record.request is not None:
            record.history.append(record.request)
        if agent_message is not None:
            record.history.append(agent_message)
        record.request = a2a_message
        record.message = message
        record.trace_id = trace_id
        record.resume_token = None
        record.turns += 1
        self._tasks.reactivate(record)
        return record

    @property
    def active_tasks(self) -> int:
        """How many tasks are running right now."""
        return len(self._tasks.active)

    @property
    def finished_tasks(self) -> int:
        """How many finished tasks are kept for `tasks/get`."""
        return len(self._tasks.finished)

    @property
    def finished_bytes(self) -> int:
        """What the kept finished tasks hold, as JSON bytes (bounded by
        `max_finished_bytes`)."""
        return self._tasks.finished_bytes

    @property
    def heartbeat_s(self) -> float | None:
        """Seconds between SSE keep-alive comments on idle streams (`None`: off)."""
        return self._heartbeat_s


def _spec_output(outcome: Outcome) -> Any:
    """The output the spec'd routes answer: a pause is the whole `PlannerPause`."""
    if outcome.kind == "paused":
        return {**outcome.output, "resume_token": outcome.resume_token}
    return outcome.output


_STATE_OF: dict[str, Any] = {
    "result": "completed",
    "paused": "input-required",
    "no_result": "completed",
    "failed": "failed",
    "cancelled": "canceled",
    "timeout": "failed",
    "shutdown": "failed",
    "internal": "failed",
}


def create_a2a_app(
    adapter: A2AServerAdapter, *, include_docs: bool = True, **options: Any
) -> FastAPI:
    """A FastAPI app serving `adapter`; see `penguiflow_a2a.app.create_a2a_app`."""
    from .app import create_a2a_app as build

    app: FastAPI = build(adapter, include_docs=include_docs, **options)
    return app
