"""Patterns as a user meets them: bounded fan-out, routers and per-trace joins."""

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from penguiflow import (
    FlowError,
    FlowEvent,
    Headers,
    Message,
    Node,
    NodePolicy,
    join_k,
    map_concurrent,
    predicate_router,
    union_router,
)
from penguiflow.core import Context, create
from penguiflow.errors import UnknownTargetError

from .conftest import make_message


def sink(name: str, seen: list[tuple[str, Any]] | None = None) -> Node:
    """An egress node that records what it received and passes it on unchanged."""

    async def record(message: Any, ctx: Context) -> Any:
        if seen is not None:
            seen.append((name, message))
        return message

    return Node(record, name=name, policy=NodePolicy(validate="none"))


class Failures:
    """Middleware collecting the `FlowError` payload of every `node_failed` event."""

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []

    async def __call__(self, event: FlowEvent) -> None:
        if event.event_type == "node_failed":
            self.errors.append(event.extra["flow_error"])


# -- map_concurrent ----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    delays=st.lists(st.integers(min_value=0, max_value=4), max_size=30),
    limit=st.integers(min_value=-2, max_value=10),
)
def test_map_concurrent_keeps_order_and_respects_the_limit(delays: list[int], limit: int) -> None:
    running = 0
    peak = 0

    async def work(delay: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(delay + 1):
            await asyncio.sleep(0)
        running -= 1
        return delay * 10

    results = asyncio.run(map_concurrent(delays, work, max_concurrency=limit))

    assert results == [d * 10 for d in delays]
    # Never more than the limit (at least 1), and the limit is actually used.
    assert peak == min(len(delays), max(1, limit))


async def test_map_concurrent_on_nothing_calls_nothing() -> None:
    calls: list[int] = []

    async def work(item: int) -> int:
        calls.append(item)
        return item

    assert await map_concurrent(iter(()), work) == []
    assert calls == []


async def test_map_concurrent_accepts_any_iterable_and_propagates_the_first_error() -> None:
    async def work(item: int) -> int:
        await asyncio.sleep(0)
        if item == 3:
            raise LookupError(f"no document {item}")
        return item

    assert await map_concurrent(range(3), work, max_concurrency=2) == [0, 1, 2]
    with pytest.raises(LookupError, match="no document 3"):
        await map_concurrent(range(6), work, max_concurrency=2)


async def test_map_concurrent_inside_a_node(flows: Any) -> None:
    async def fetch_all(message: Message, ctx: Context) -> Message:
        async def lookup(query: str) -> str:
            await asyncio.sleep(0)
            return query.upper()

        found = await map_concurrent(message.payload, lookup, max_concurrency=2)
        return message.model_copy(update={"payload": found})

    fan_out = Node(fetch_all, policy=NodePolicy(validate="none"))
    flow = flows(fan_out.to())
    flow.run()
    await flow.emit(make_message(["a", "b", "c"]))
    assert (await flow.fetch()).payload == ["A", "B", "C"]


# -- predicate_router --------------------------------------------------------------------


async def test_predicate_router_sends_each_message_to_the_named_successor(flows: Any) -> None:
    seen: list[tuple[str, Any]] = []
    urgent, normal = sink("urgent", seen), sink("normal", seen)
    router = predicate_router(
        "triage", lambda msg: "urgent" if msg.headers.priority > 5 else "normal"
    )
    assert (router.name, router.policy.validate) == ("triage", "none")
    flow = flows(router.to(urgent, normal), urgent.to(), normal.to())
    flow.run()

    fire = Message(payload="fire", headers=Headers(tenant="acme", priority=9))
    memo = Message(payload="memo", headers=Headers(tenant="acme", priority=1))
    await flow.emit(fire)
    assert await flow.fetch() is fire  # the very same object, unchanged
    await flow.emit(memo)
    assert await flow.fetch() is memo

    assert [(name, msg.payload) for name, msg in seen] == [("urgent", "fire"), ("normal", "memo")]


async def test_predicate_router_fans_out_to_several_nodes(flows: Any) -> None:
    seen: list[tuple[str, Any]] = []
    search, audit, other = sink("search", seen), sink("audit", seen), sink("other", seen)
    router = predicate_router("fan", lambda msg: [search, "audit"])
    flow = flows(router.to(search, audit, other), search.to(), audit.to(), other.to())
    flow.run()
    message = make_message("q")
    await flow.emit(message)
    results = [await flow.fetch(), await flow.fetch()]

    assert results == [message, message]
    assert sorted(name for name, _ in seen) == ["audit", "search"]


@pytest.mark.parametrize("decision", [None, [], ()])
async def test_predicate_router_drops_when_nothing_is_chosen(flows: Any, decision: Any) -> None:
    seen: list[tuple[str, Any]] = []
    left = sink("left", seen)
    router = predicate_router("gate", lambda msg: "left" if msg.payload == "keep" else decision)
    flow = flows(router.to(left), left.to())
    flow.run()
    await flow.emit(make_message("drop"))
    await flow.emit(make_message("keep"))

    assert (await flow.fetch()).payload == "keep"
    # The dropped message was handled first (one worker, arrival order) and went nowhere.
    assert [msg.payload for _, msg in seen] == ["keep"]
    assert flow.traces.active() == ()


@pytest.mark.parametrize(
    ("decision", "error_type", "text"),
    [
        ("nowhere", KeyError, "No successor named 'nowhere'"),
        (["left", 42], TypeError, "Targets must be Node or str"),
        (42, TypeError, "Targets must be Node or str"),
    ],
)
async def test_predicate_router_rejects_bad_decisions(
    flows: Any, decision: Any, error_type: type[Exception], text: str
) -> None:
    left = sink("left")
    router = predicate_router("bad", lambda msg: decision)
    flow = flows(router.to(left), left.to(), emit_errors_to_rookery=True)
    flow.run()
    message = make_message("x")
    await flow.emit(message)
    error = await flow.fetch()

    assert isinstance(error, FlowError)
    assert (error.code, error.node_name, error.trace_id) == (
        "NODE_EXCEPTION",
        "bad",
        message.trace_id,
    )
    original = error.unwrap()
    assert isinstance(original, error_type)
    assert original.args == (text,)


async def test_predicate_router_refuses_a_node_that_is_not_a_successor(flows: Any) -> None:
    left, stranger = sink("left"), sink("stranger")
    router = predicate_router("r", lambda msg: stranger)
    flow = flows(router.to(left), left.to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(make_message("x"))
    error = await flow.fetch()

    assert isinstance(error, FlowError)
    assert isinstance(error.unwrap(), KeyError)
    assert error.unwrap().args == ("Unknown target stranger for r",)  # type: ignore[union-attr]


async def test_predicate_router_names_never_match_rookery(flows: Any) -> None:
    router = predicate_router("lonely", lambda msg: "Rookery")
    flow = flows(router.to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(make_message("x"))
    error = await flow.fetch()
    assert isinstance(error, FlowError)
    assert error.message == (
        "Node 'lonely' raised UnknownTargetError: \"No successor named 'Rookery'\""
    )
    original = error.unwrap()
    assert isinstance(original, UnknownTargetError)  # a KeyError naming what was wrong
    assert (original.target, original.owner) == ("Rookery", "lonely")


async def test_async_predicate_is_a_clear_error(flows: Any) -> None:
    async def choose(msg: Any) -> str:
        return "left"

    left = sink("left")
    router = predicate_router("r", choose)  # type: ignore[arg-type]
    flow = flows(router.to(left), left.to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(make_message("x"))
    error = await flow.fetch()
    assert isinstance(error, FlowError)
    assert isinstance(error.unwrap(), TypeError)
    assert str(error.unwrap()) == "predicate of router 'r' must be synchronous"


def test_router_factories_check_their_arguments() -> None:
    with pytest.raises(TypeError, match="predicate must be callable, got str"):
        predicate_router("r", "left")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"predicate_router\(\) name must be a str, got int"):
        predicate_router(7, lambda msg: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"union_router\(\) name must not be empty"):
        union_router("", BaseModel)


# -- union_router ------------------------------------------------------------------------


class Search(BaseModel):
    kind: Literal["search"] = "search"
    query: str


class Summarize(BaseModel):
    kind: Literal["summarize"] = "summarize"
    text: str


Task = Annotated[Search | Summarize, Field(discriminator="kind")]


async def test_union_router_routes_by_kind_and_forwards_the_validated_model(flows: Any) -> None:
    seen: list[tuple[str, Any]] = []
    search, summarize = sink("search", seen), sink("summarize", seen)
    router = union_router("dispatch", Task)  # type: ignore[arg-type]
    flow = flows(router.to(search, summarize), search.to(), summarize.to())
    flow.run()

    await flow.emit({"kind": "summarize", "text": "long"})
    assert await flow.fetch() == Summarize(text="long")
    await flow.emit(Search(query="penguins"))
    assert await flow.fetch() == Search(query="penguins")

    assert [(name, type(obj)) for name, obj in seen] == [
        ("summarize", Summarize),
        ("search", Search),
    ]


async def test_union_router_uses_the_class_name_without_kind(flows: Any) -> None:
    class Refund(BaseModel):
        amount: int

    class Invoice(BaseModel):
        number: str

    seen: list[tuple[str, Any]] = []
    refund, invoice = sink("Refund", seen), sink("Invoice", seen)
    router = union_router("billing", Refund | Invoice)  # type: ignore[arg-type]
    flow = flows(router.to(refund, invoice), refund.to(), invoice.to())
    flow.run()
    await flow.emit({"number": "INV-1"})
    assert await flow.fetch() == Invoice(number="INV-1")
    assert [name for name, _ in seen] == ["Invoice"]


async def test_union_router_errors_reach_the_user(flows: Any) -> None:
    class Multi(BaseModel):
        kind: list[str]

    search = sink("search")
    router = union_router("dispatch", Multi)
    flow = flows(router.to(search), search.to(), emit_errors_to_rookery=True)
    flow.run()

    # A Message envelope does not validate against the payload model.
    envelope = make_message({"kind": ["search"]})
    await flow.emit(envelope)
    invalid = await flow.fetch()
    assert isinstance(invalid, FlowError)
    assert isinstance(invalid.unwrap(), ValidationError)
    assert invalid.trace_id == envelope.trace_id

    # Errors for bare payloads carry no trace id, so watch the node_failed events.
    failures = Failures()
    flow.add_middleware(failures)
    await flow.emit({"kind": ["search"]})
    assert await flow.fetch() == Multi(kind=["search"])
    await flow.emit({"kind": ["archive"]})
    await flow.emit({"kind": []})
    await flow.emit({"kind": ["search"]})
    assert await flow.fetch() == Multi(kind=["search"])
    assert [e["message"] for e in failures.errors] == [
        "Node 'dispatch' raised UnknownTargetError: \"No successor named 'archive'\"",
        "Node 'dispatch' raised UnknownTargetError: \"No successor matches '[]'\"",
    ]


# -- join_k ------------------------------------------------------------------------------


async def test_join_k_aggregates_each_trace_in_arrival_order(flows: Any) -> None:
    join = join_k("join", 2)
    out = sink("out")
    flow = flows(join.to(out), out.to())
    flow.run()

    first = make_message("a1", meta={"step": "first"})
    other = make_message("b1")
    for message in [
        first,
        other,
        make_message("a2", trace_id=first.trace_id, meta={"step": "second"}),
        make_message("a3", trace_id=first.trace_id),
        make_message("b2", trace_id=other.trace_id),
        make_message("a4", trace_id=first.trace_id),
    ]:
        await flow.emit(message)
    results = [await flow.fetch() for _ in range(3)]

    assert [(r.trace_id, r.payload) for r in results] == [
        (first.trace_id, ["a1", "a2"]),
        (other.trace_id, ["b1", "b2"]),
        (first.trace_id, ["a3", "a4"]),
    ]
    # The envelope (headers, meta, trace) is the first message's; it is a copy.
    assert results[0].meta == {"step": "first"}
    assert results[0].headers == first.headers
    assert results[0] is not first
    assert first.payload == "a1"


async def test_join_k_after_a_fan_out(flows: Any) -> None:
    def branch(name: str) -> Node:
        async def tag(message: Message, ctx: Context) -> Message:
            return message.model_copy(update={"payload": f"{name}:{message.payload}"})

        return Node(tag, name=name, policy=NodePolicy(validate="none"))

    a, b, c = branch("a"), branch("b"), branch("c")
    join = join_k("join", 3)
    flow = flows(a.to(join), b.to(join), c.to(join), join.to())
    flow.run()
    message = make_message("q")
    await flow.emit(message)
    result = await flow.fetch()

    assert result.trace_id == message.trace_id
    assert sorted(result.payload) == ["a:q", "b:q", "c:q"]
    assert flow.traces.active() == ()


async def test_join_k_of_bare_items_returns_the_items(flows: Any) -> None:
    @dataclass
    class Hit:
        trace_id: str
        score: float

    join = join_k("join", 3)
    flow = flows(join.to())
    flow.run()
    hits = [Hit("t", 0.1), Hit("t", 0.9), Hit("t", 0.5)]
    for hit in hits:
        await flow.emit(hit)
    assert await flow.fetch() == hits


async def test_join_k_requires_a_trace_id(flows: Any) -> None:
    failures = Failures()
    join = join_k("join", 2)
    flow = flows(join.to(), middlewares=[failures])
    flow.run()
    await flow.emit({"no": "trace"})
    message = make_message(1)
    await flow.emit(message)
    await flow.emit(make_message(2, trace_id=message.trace_id))

    assert (await flow.fetch()).payload == [1, 2]
    assert [e["message"] for e in failures.errors] == [
        "Node 'join' raised ValueError: join_k requires messages with trace_id"
    ]


def test_join_k_checks_k() -> None:
    with pytest.raises(ValueError, match="k must be positive"):
        join_k("join", 0)
    with pytest.raises(TypeError, match="k must be an int, got float"):
        join_k("join", 2.0)  # type: ignore[arg-type]
    assert join_k("join", 1).name == "join"


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(min_value=1, max_value=4),
    arrivals=st.lists(st.sampled_from("abc"), max_size=24),
)
def test_join_k_emits_consecutive_groups_of_k_per_trace(k: int, arrivals: list[str]) -> None:
    """Whatever the interleaving, each trace yields its messages in groups of k, in order."""

    async def scenario() -> dict[str, list[list[int]]]:
        flow = create(join_k("join", k).to())
        flow.run()
        try:
            headers = Headers(tenant="acme")
            for index, trace in enumerate(arrivals):
                await flow.emit(Message(payload=index, headers=headers, trace_id=trace))
            groups: dict[str, list[list[int]]] = {}
            for _ in range(sum(arrivals.count(t) // k for t in "abc")):
                result = await asyncio.wait_for(flow.fetch(), 1)
                groups.setdefault(result.trace_id, []).append(result.payload)
            return groups
        finally:
            await flow.stop()

    groups = asyncio.run(scenario())

    for trace in "abc":
        indices = [i for i, t in enumerate(arrivals) if t == trace]
        complete = len(indices) - len(indices) % k
        expected = [indices[i : i + k] for i in range(0, complete, k)]
        assert groups.get(trace, []) == expected
