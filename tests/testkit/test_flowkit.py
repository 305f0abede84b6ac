"""FlowTestKit: run a flow once, then assert on what it did."""

import asyncio
from typing import Any

import pytest

from penguiflow import (
    WM,
    FinalAnswer,
    FlowError,
    FlowErrorCode,
    Headers,
    Message,
    Node,
    NodePolicy,
    create,
    testkit,
)

from ..conftest import make_message

NO_VALIDATION = NodePolicy(validate="none")


async def parse(message: Message, ctx: Any) -> Message:
    return message.model_copy(update={"payload": str(message.payload).strip()})


async def answer(message: Message, ctx: Any) -> Message:
    return message.model_copy(update={"payload": f"answer to {message.payload}"})


def pipeline() -> Any:
    parser = Node(parse, name="parse", policy=NO_VALIDATION)
    responder = Node(answer, name="answer", policy=NO_VALIDATION)
    return create(parser.to(responder), responder.to())


def flaky_node(fail_times: int, *, max_retries: int, **kwargs: Any) -> Node:
    fn = testkit.simulate_error("flaky", FlowErrorCode.NODE_EXCEPTION, fail_times=fail_times)
    policy = NodePolicy(validate="none", max_retries=max_retries, backoff_base=0.0)
    return Node(fn, name="flaky", policy=policy, **kwargs)


# -- run_one / assert_node_sequence ----------------------------------------------------


async def test_run_one_returns_the_result_and_records_the_path() -> None:
    message = make_message("  weather?  ")

    result = await testkit.run_one(pipeline(), message)

    assert isinstance(result, Message)
    assert result.payload == "answer to weather?"
    assert result.trace_id == message.trace_id
    testkit.assert_node_sequence(message.trace_id, ["parse", "answer"])


async def test_sequence_mismatch_shows_both_sequences() -> None:
    message = make_message("q")
    await testkit.run_one(pipeline(), message)

    with pytest.raises(AssertionError) as excinfo:
        testkit.assert_node_sequence(message.trace_id, ("answer", "parse"))

    assert str(excinfo.value) == (
        "Node sequence mismatch:\n  expected: ['answer', 'parse']\n  actual:   ['parse', 'answer']"
    )


def test_asserting_an_unknown_trace_says_what_to_do() -> None:
    with pytest.raises(AssertionError) as excinfo:
        testkit.assert_node_sequence("never-ran", ["parse"])
    assert str(excinfo.value) == (
        "No recorded events for trace_id='never-ran'; run a flow with run_one first."
    )


def test_expected_must_be_a_list_of_names_not_one_string() -> None:
    with pytest.raises(TypeError, match=r"did you mean \['parse'\]\?"):
        testkit.assert_node_sequence("any", "parse")


async def test_recorded_events_follow_the_node_lifecycle() -> None:
    message = make_message("q")
    await testkit.run_one(pipeline(), message)

    events = testkit.get_recorded_events(message.trace_id)

    lifecycle = [(e.event_type, e.node_name) for e in events if e.event_type.startswith("node_")]
    assert lifecycle == [
        ("node_start", "parse"),
        ("node_success", "parse"),
        ("node_start", "answer"),
        ("node_success", "answer"),
    ]
    assert {e.trace_id for e in events} == {message.trace_id}
    assert testkit.get_recorded_events("unknown-trace") == ()


async def test_running_the_same_flow_twice_records_each_run_once() -> None:
    flow = pipeline()
    first, second = make_message("a"), make_message("b")

    await testkit.run_one(flow, first)
    await testkit.run_one(flow, second)

    for trace_id in (first.trace_id, second.trace_id):
        starts = [e for e in testkit.get_recorded_events(trace_id) if e.event_type == "node_start"]
        assert [e.node_name for e in starts] == ["parse", "answer"]


async def test_rerunning_a_trace_replaces_its_history() -> None:
    message = make_message("q")
    await testkit.run_one(pipeline(), message)

    other = Node(answer, name="other", policy=NO_VALIDATION)
    await testkit.run_one(create(other.to()), message)

    testkit.assert_node_sequence(message.trace_id, ["other"])


async def test_history_keeps_only_the_64_most_recent_traces() -> None:
    flow = create(Node(answer, name="answer", policy=NO_VALIDATION).to())
    messages = [make_message(i) for i in range(65)]

    for message in messages:
        await testkit.run_one(flow, message)

    assert testkit.get_recorded_events(messages[0].trace_id) == ()
    assert testkit.get_recorded_events(messages[1].trace_id) != ()
    testkit.assert_node_sequence(messages[-1].trace_id, ["answer"])


async def test_controller_loops_collapse_to_one_entry() -> None:
    async def think(message: Message, ctx: Any) -> Message:
        wm = message.payload
        return message.model_copy(update={"payload": wm.model_copy(update={"hops": wm.hops + 1})})

    controller = Node(think, name="controller", policy=NO_VALIDATION, allow_cycle=True)
    message = make_message(WM(query="q", budget_hops=3))

    result = await testkit.run_one(create(controller.to(controller)), message)

    assert result.payload == FinalAnswer(text="Hop budget exhausted")
    starts = [
        e for e in testkit.get_recorded_events(message.trace_id) if e.event_type == "node_start"
    ]
    assert len(starts) == 3
    testkit.assert_node_sequence(message.trace_id, ["controller"])


async def test_run_one_stops_the_flow_even_on_timeout() -> None:
    release = asyncio.Event()

    async def wait_for_release(message: Message, ctx: Any) -> Message:
        await release.wait()
        return message

    flow = create(Node(wait_for_release, name="gate", policy=NO_VALIDATION).to())

    with pytest.raises(TimeoutError):
        await testkit.run_one(flow, make_message("q"), timeout_s=0.05)

    # Stopped, so it can run again.
    release.set()
    message = make_message("again")
    assert await testkit.run_one(flow, message) is not None
    testkit.assert_node_sequence(message.trace_id, ["gate"])


async def test_run_one_rejects_what_is_not_a_message() -> None:
    with pytest.raises(TypeError, match=r"run_one expects a penguiflow\.types\.Message instance"):
        await testkit.run_one(pipeline(), {"payload": "q"})  # type: ignore[arg-type]
    with pytest.raises(AttributeError, match="PenguiFlow instance is missing middleware hooks"):
        await testkit.run_one(object(), make_message("q"))  # type: ignore[arg-type]


async def test_run_one_on_a_running_flow_raises() -> None:
    flow = pipeline()
    flow.run()
    try:
        with pytest.raises(RuntimeError, match="PenguiFlow already running"):
            await testkit.run_one(flow, make_message("q"))
    finally:
        await flow.stop()


# -- simulate_error --------------------------------------------------------------------


async def test_simulated_failures_are_retried_until_success() -> None:
    flaky = flaky_node(2, max_retries=2)
    message = make_message("q")

    result = await testkit.run_one(create(flaky.to()), message)

    assert result is message  # the default simulated node echoes its input
    simulation = flaky.func.simulation  # type: ignore[attr-defined]
    assert (simulation.attempts, simulation.failures) == (3, 2)
    kinds = [e.event_type for e in testkit.get_recorded_events(message.trace_id)]
    assert kinds == [
        "node_start",
        "node_error",
        "node_retry",
        "node_start",
        "node_error",
        "node_retry",
        "node_start",
        "node_success",
    ]
    errors = [
        e for e in testkit.get_recorded_events(message.trace_id) if e.event_type == "node_error"
    ]
    assert errors[1].extra["exception"] == repr(
        RuntimeError("[NODE_EXCEPTION] simulated failure in flaky (attempt 2)")
    )
    testkit.assert_node_sequence(message.trace_id, ["flaky"])


async def test_a_failure_beyond_the_retries_reaches_rookery_as_flow_error() -> None:
    flaky = flaky_node(3, max_retries=1)
    message = make_message("q")

    result = await testkit.run_one(create(flaky.to(), emit_errors_to_rookery=True), message)

    assert isinstance(result, FlowError)
    assert result.code == "NODE_EXCEPTION"
    assert result.trace_id == message.trace_id
    assert result.message == (
        "Node 'flaky' raised RuntimeError: [NODE_EXCEPTION] simulated failure in flaky (attempt 2)"
    )
    assert flaky.func.simulation.failures == 2  # type: ignore[attr-defined]


async def test_simulated_result_and_result_factory() -> None:
    message = make_message("q")

    fixed = testkit.simulate_error("n", "BOOM", result="fixed", exception_type=ValueError)
    with pytest.raises(ValueError, match=r"^\[BOOM\] simulated failure in n \(attempt 1\)$"):
        await fixed(message, None)
    assert await fixed(message, None) == "fixed"

    def shout(msg: Message) -> str:
        return str(msg.payload).upper()

    sync_factory = testkit.simulate_error("n", "BOOM", result_factory=shout)
    with pytest.raises(RuntimeError):
        await sync_factory(message, None)
    assert await sync_factory(message, None) == "Q"

    async def later(msg: Message) -> str:
        return f"later {msg.payload}"

    async_factory = testkit.simulate_error("n", "BOOM", result_factory=later, fail_times=2)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await async_factory(message, None)
    assert await async_factory(message, None) == "later q"
    assert async_factory.simulation.attempts == 3
    assert async_factory.__name__ == "_runner"


def test_simulate_error_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="fail_times must be >= 1"):
        testkit.simulate_error("n", "X", fail_times=0)
    with pytest.raises(ValueError, match="Specify only one of result or result_factory"):
        testkit.simulate_error("n", "X", result=1, result_factory=lambda m: m)


# -- assert_preserves_message_envelope -------------------------------------------------


async def test_a_node_that_keeps_the_envelope_passes() -> None:
    async def enrich(message: Message, ctx: Any) -> Message:
        return message.model_copy(update={"payload": {"n": 1}, "meta": {"seen": True}})

    result = await testkit.assert_preserves_message_envelope(enrich)

    assert result.payload == {"n": 1}
    assert result.headers == Headers(tenant="test")


async def test_rebuilding_the_message_is_reported_field_by_field() -> None:
    async def rewrap(message: Message, ctx: Any) -> Message:
        return Message(payload=message.payload, headers=Headers(tenant="other"))

    with pytest.raises(AssertionError) as excinfo:
        await testkit.assert_preserves_message_envelope(rewrap, message=make_message("q"))
    assert str(excinfo.value) == (
        "Node 'rewrap' altered Message headers, trace_id; preserve the envelope"
    )

    async def new_trace(message: Message, ctx: Any) -> Message:
        return Message(payload=message.payload, headers=message.headers)

    with pytest.raises(AssertionError, match=r"altered Message trace_id; preserve the envelope"):
        await testkit.assert_preserves_message_envelope(Node(new_trace, name="fresh"))


async def test_returning_a_bare_payload_is_reported() -> None:
    async def bare(message: Message, ctx: Any) -> dict[str, Any]:
        return {"answer": 1}

    with pytest.raises(AssertionError) as excinfo:
        await testkit.assert_preserves_message_envelope(Node(bare, name="extract"))
    assert str(excinfo.value) == "Node 'extract' must return a Message but produced dict"


async def test_envelope_check_needs_an_async_node_and_stubs_the_context() -> None:
    def sync_node(message: Message, ctx: Any) -> Message:
        return message

    with pytest.raises(TypeError, match="expects an async node"):
        await testkit.assert_preserves_message_envelope(sync_node)

    async def streams(message: Message, ctx: Any) -> Message:
        await ctx.emit_chunk(parent=message, text="x")
        return message

    with pytest.raises(RuntimeError, match="provide a custom context via the 'ctx' parameter"):
        await testkit.assert_preserves_message_envelope(streams)

    async def forwards(message: Message, ctx: Any) -> Message:
        await ctx.emit(message)
        ctx.emit_nowait(message)
        return message

    message = make_message("q")
    assert await testkit.assert_preserves_message_envelope(forwards, message=message) is message


def test_testkit_exports_the_specified_names() -> None:
    assert testkit.__all__ == [
        "run_one",
        "assert_node_sequence",
        "get_recorded_events",
        "simulate_error",
        "assert_preserves_message_envelope",
    ]
