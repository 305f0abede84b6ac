"""FlowTestKit implementation: run a flow once, record its events, assert on them.

Every flow used by `run_one` gets one recording middleware. Recorded events are kept
per trace id in a module-wide history bounded to the 64 most recent traces, so
`assert_node_sequence` and `get_recorded_events` work after the flow has stopped.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..errors import ContextError, FlowAssertionError, FlowErrorCode, InvalidArgumentError
from ..metrics import FlowEvent
from ..node import Node
from ..types import Headers, Message, StreamChunk

if TYPE_CHECKING:
    from ..core import PenguiFlow

__all__ = [
    "run_one",
    "assert_node_sequence",
    "get_recorded_events",
    "simulate_error",
    "assert_preserves_message_envelope",
    "Simulation",
    "SimulatedNode",
]

_MAX_TRACE_HISTORY = 64

# trace id -> recorded events, oldest trace first.
_TRACE_HISTORY: OrderedDict[str, list[FlowEvent]] = OrderedDict()


def _register_trace(trace_id: str) -> list[FlowEvent]:
    """Start a fresh (empty) history for `trace_id` as the newest entry."""
    events: list[FlowEvent] = []
    if not trace_id:
        return events
    _TRACE_HISTORY.pop(trace_id, None)
    _TRACE_HISTORY[trace_id] = events
    while len(_TRACE_HISTORY) > _MAX_TRACE_HISTORY:
        _TRACE_HISTORY.popitem(last=False)
    return events


class _Recorder:
    """A middleware that keeps every event of its flow and files it under its trace."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: list[FlowEvent] = []

    def begin(self, trace_ids: Iterable[str]) -> None:
        """Start a run: forget the previous log and reset the histories of `trace_ids`."""
        self.events = []
        for trace_id in trace_ids:
            _register_trace(trace_id)

    async def __call__(self, event: FlowEvent) -> None:
        # Appending never yields to the loop, so events land in emission order
        # without a lock.
        self.events.append(event)
        trace_id = event.trace_id
        if trace_id:
            history = _TRACE_HISTORY.get(trace_id)
            if history is None:
                history = _register_trace(trace_id)
            history.append(event)


_RECORDERS: weakref.WeakKeyDictionary[Any, _Recorder] = weakref.WeakKeyDictionary()


def _recorder_for(flow: Any) -> _Recorder:
    """The flow's recorder, added as a middleware the first time (never removed)."""
    add_middleware = getattr(flow, "add_middleware", None)
    if not callable(add_middleware):
        raise AttributeError("PenguiFlow instance is missing middleware hooks")
    recorder = _RECORDERS.get(flow)
    if recorder is not None:
        return recorder
    recorder = _RECORDERS[flow] = _Recorder()
    add_middleware(recorder)
    return recorder


async def run_one(
    flow: PenguiFlow,
    message: Message,
    *,
    registry: Any | None = None,
    timeout_s: float | None = 1.0,
) -> Any:
    """Run `flow`, send it one message, return the first result and stop the flow.

    The flow's events are recorded under `message.trace_id` (replacing any earlier
    recording for that trace) for `assert_node_sequence` and `get_recorded_events`.
    The result is returned exactly as fetched from Rookery: usually a `Message`, a
    `FlowError` (with `emit_errors_to_rookery=True`) or a bare value. The flow is
    stopped even when the fetch fails or times out (`TimeoutError` after
    `timeout_s` seconds; `None` waits forever). Raises `TypeError` unless
    `message` is a `Message`, and `RuntimeError` if the flow is already running.
    """
    if not isinstance(message, Message):
        raise TypeError("run_one expects a penguiflow.types.Message instance")
    recorder = _recorder_for(flow)
    recorder.begin([message.trace_id])
    flow.run(registry=registry)
    try:
        await flow.emit(message)
        if timeout_s is None:
            return await flow.fetch()
        return await asyncio.wait_for(flow.fetch(), timeout_s)
    finally:
        await flow.stop()


def _node_label(event: FlowEvent) -> str:
    return event.node_name or event.node_id or "<anonymous>"


def assert_node_sequence(trace_id: str, expected: Sequence[str]) -> None:
    """Assert the nodes that started for `trace_id`, in order, are `expected`.

    Consecutive starts of the same node (retries, controller loops) count once.
    Raises `AssertionError` showing both sequences when they differ, or when
    nothing was recorded for the trace. Raises `TypeError` if `expected` is a
    single string rather than a sequence of names.
    """
    if isinstance(expected, str):
        raise TypeError(
            f"expected must be a sequence of node names, not a str; did you mean [{expected!r}]?"
        )
    history = _TRACE_HISTORY.get(trace_id)
    if not history:
        raise FlowAssertionError(
            f"No recorded events for trace_id={trace_id!r}; run a flow with run_one first."
        )
    actual: list[str] = []
    for event in history:
        if event.event_type != "node_start":
            continue
        label = _node_label(event)
        if not actual or actual[-1] != label:
            actual.append(label)
    expected_list = list(expected)
    if actual != expected_list:
        raise FlowAssertionError(
            f"Node sequence mismatch:\n  expected: {expected_list!r}\n  actual:   {actual!r}"
        )


def get_recorded_events(trace_id: str) -> tuple[FlowEvent, ...]:
    """A snapshot of the events recorded for `trace_id` (empty if none)."""
    return tuple(_TRACE_HISTORY.get(trace_id, ()))


class Simulation:
    """Call counters of a `simulate_error` node (read-only)."""

    __slots__ = ("_attempts", "_fail_times")

    def __init__(self, fail_times: int) -> None:
        self._fail_times = fail_times
        self._attempts = 0

    @property
    def attempts(self) -> int:
        """How many times the node has been called."""
        return self._attempts

    @property
    def failures(self) -> int:
        """How many of those calls raised."""
        return min(self._attempts, self._fail_times)

    def record_call(self) -> int:
        """Count one call of the node and return its number (1 for the first call)."""
        self._attempts += 1
        return self._attempts


class SimulatedNode(Protocol):
    """The node function returned by `simulate_error`, with its counters attached."""

    simulation: Simulation
    __name__: str

    def __call__(self, message: Any, ctx: Any, /) -> Awaitable[Any]: ...


def simulate_error(
    node_name: str,
    code: FlowErrorCode | str,
    *,
    fail_times: int = 1,
    result: Any | None = None,
    result_factory: Callable[[Any], Awaitable[Any] | Any] | None = None,
    exception_type: type[Exception] = RuntimeError,
) -> SimulatedNode:
    """Build a node function that fails `fail_times` times, then succeeds.

    Failing calls raise `exception_type("[{code}] simulated failure in {node_name}
    (attempt {n})")`. Later calls return `result` if given, else
    `result_factory(message)` (awaited if needed), else the incoming message.
    Wrap it as `Node(fn, name=node_name)`; `fn.simulation.attempts` and
    `.failures` count the calls. Raises `ValueError` if `fail_times < 1` or both
    `result` and `result_factory` are given.
    """
    if fail_times < 1:
        raise InvalidArgumentError("fail_times must be >= 1")
    if result is not None and result_factory is not None:
        raise InvalidArgumentError("Specify only one of result or result_factory")
    code_text = code.value if isinstance(code, FlowErrorCode) else str(code)
    simulation = Simulation(fail_times)

    async def _runner(message: Any, ctx: Any) -> Any:
        attempt = simulation.record_call()
        if attempt <= fail_times:
            raise exception_type(
                f"[{code_text}] simulated failure in {node_name} (attempt {attempt})"
            )
        if result is not None:
            return result
        if result_factory is not None:
            produced = result_factory(message)
            if inspect.isawaitable(produced):
                produced = await produced
            return produced
        return message

    runner = cast(SimulatedNode, _runner)
    runner.simulation = simulation
    return runner


class _StubContext:
    """A context for calling a node function outside a flow: emits go nowhere."""

    async def emit(self, msg: Any, to: Any = None) -> None:
        """Discard the message."""

    def emit_nowait(self, msg: Any, to: Any = None) -> None:
        """Discard the message."""

    async def emit_chunk(self, **kwargs: Any) -> StreamChunk:
        """Unsupported: streaming needs a real flow or a custom context."""
        raise ContextError(
            "FlowTestKit stub context does not support emit_chunk; provide a custom "
            "context via the 'ctx' parameter"
        )


async def assert_preserves_message_envelope(
    node: Callable[[Message, Any], Awaitable[Any]] | Any,
    *,
    message: Message | None = None,
    ctx: Any | None = None,
) -> Message:
    """Call a node function once and assert it keeps the `Message` envelope.

    `node` is a `Node` or its async function; it is called directly (no registry,
    no runtime) with `message` (default: an empty payload for tenant `"test"`) and
    `ctx` (default: a stub whose emits are discarded). The result must be a
    `Message` with the same `headers` and `trace_id`; payload and `meta` may
    change. Returns the result, raises `AssertionError` otherwise and `TypeError`
    if the function is not async.
    """
    if isinstance(node, Node):
        func: Any = node.func
        name = node.name or func.__name__
    else:
        func = node
        name = getattr(node, "__name__", "<anonymous>")
    if not inspect.iscoroutinefunction(func):
        raise TypeError("assert_preserves_message_envelope expects an async node")
    sample = message if message is not None else Message(payload={}, headers=Headers(tenant="test"))
    context = ctx if ctx is not None else _StubContext()
    produced = await func(sample, context)
    if not isinstance(produced, Message):
        raise FlowAssertionError(
            f"Node '{name}' must return a Message but produced {type(produced).__name__}"
        )
    altered: list[str] = []
    if produced.headers != sample.headers:
        altered.append("headers")
    if produced.trace_id != sample.trace_id:
        altered.append("trace_id")
    if altered:
        raise FlowAssertionError(
            f"Node '{name}' altered Message {', '.join(altered)}; preserve the envelope"
        )
    return produced
