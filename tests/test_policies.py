"""Routing policies: configuration that overrides where a router sends messages."""

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from penguiflow import (
    DictRoutingPolicy,
    FlowError,
    Headers,
    Message,
    Node,
    NodePolicy,
    RoutingPolicy,
    RoutingRequest,
    predicate_router,
    union_router,
)
from penguiflow.core import Context, create
from penguiflow.policies import RoutingDecisionType, evaluate_policy

from .conftest import make_message


def sink(name: str, seen: list[str]) -> Node:
    async def record(message: Any, ctx: Context) -> Any:
        seen.append(name)
        return message

    return Node(record, name=name, policy=NodePolicy(validate="none"))


def by_tenant(request: RoutingRequest) -> str | None:
    return request.message.headers.tenant  # type: ignore[no-any-return]


def _request(trace_id: str | None) -> RoutingRequest:
    """The request a router named "r" (successors "a" and "b") would build."""
    a, b = sink("a", []), sink("b", [])
    router = predicate_router("r", lambda msg: None)
    flow = create(router.to(a, b), a.to(), b.to())
    context = flow.contexts[router]
    return RoutingRequest(
        message=None, context=context, node=router, proposed=(a,), trace_id=trace_id
    )


def tenant_message(tenant: str, payload: Any = None) -> Message:
    return Message(payload=payload, headers=Headers(tenant=tenant))


async def test_policy_sees_the_request_the_router_built(flows: Any) -> None:
    requests: list[RoutingRequest] = []

    def keep_proposal(request: RoutingRequest) -> RoutingDecisionType:
        requests.append(request)
        return request.proposed

    seen: list[str] = []
    fast, slow = sink("fast", seen), sink("slow", seen)
    router = predicate_router("pick", lambda msg: ["slow", fast], policy=keep_proposal)
    flow = flows(router.to(fast, slow), fast.to(), slow.to())
    flow.run()
    message = make_message("q")
    await flow.emit(message)
    assert [await flow.fetch(), await flow.fetch()] == [message, message]

    (request,) = requests
    assert request.message is message
    assert request.node is router
    assert isinstance(request.context, Context)
    assert request.context.owner is router
    assert request.proposed == (slow, fast)
    assert request.trace_id == message.trace_id
    assert request.node_name == "pick"
    assert request.proposed_names == ("slow", "fast")
    assert sorted(seen) == ["fast", "slow"]


async def test_dict_policy_routes_tenants_from_configuration(flows: Any) -> None:
    seen: list[str] = []
    premium, standard = sink("premium", seen), sink("standard", seen)
    policy = DictRoutingPolicy({"acme": "premium"}, default="standard", key_getter=by_tenant)
    # The predicate proposes everything; the policy decides.
    router = predicate_router("tiers", lambda msg: [premium, standard], policy=policy)
    flow = flows(router.to(premium, standard), premium.to(), standard.to())
    flow.run()

    for tenant in ["acme", "globex", "acme"]:
        await flow.emit(tenant_message(tenant))
        assert (await flow.fetch()).headers.tenant == tenant
    assert seen == ["premium", "standard", "premium"]

    # Reconfigure while running: applies to the next message.
    policy.update_mapping({"globex": ["premium", standard]})
    policy.set_default(None)
    await flow.emit(tenant_message("acme", "dropped"))
    await flow.emit(tenant_message("globex", "both"))
    assert [(await flow.fetch()).payload for _ in range(2)] == ["both", "both"]
    assert sorted(seen[3:]) == ["premium", "standard"]


async def test_dict_policy_keys_by_trace_id_by_default(flows: Any) -> None:
    seen: list[str] = []
    a, b = sink("a", seen), sink("b", seen)
    vip = make_message("vip")
    policy = DictRoutingPolicy({vip.trace_id: "b"}, default="a")
    router = predicate_router("r", lambda msg: "a", policy=policy)
    flow = flows(router.to(a, b), a.to(), b.to())
    flow.run()
    await flow.emit(make_message("regular"))
    await flow.emit(vip)
    assert (await flow.fetch(from_=b)).payload == "vip"
    assert (await flow.fetch(from_=a)).payload == "regular"
    assert sorted(seen) == ["a", "b"]


async def test_policy_returning_none_drops_the_message(flows: Any) -> None:
    seen: list[str] = []
    out = sink("out", seen)

    async def only_even(request: RoutingRequest) -> RoutingDecisionType:
        return request.proposed if request.message.payload % 2 == 0 else None

    router = predicate_router("even", lambda msg: "out", policy=only_even)
    flow = flows(router.to(out), out.to())
    flow.run()
    for number in range(5):
        await flow.emit(make_message(number))
    assert [(await flow.fetch()).payload for _ in range(3)] == [0, 2, 4]
    assert seen == ["out"] * 3
    assert flow.traces.active() == ()


async def test_policy_decision_with_an_unknown_name_fails_the_router(flows: Any) -> None:
    seen: list[str] = []
    out = sink("out", seen)
    policy = DictRoutingPolicy({}, default="archive")
    router = predicate_router("r", lambda msg: "out", policy=policy)
    flow = flows(router.to(out), out.to(), emit_errors_to_rookery=True)
    flow.run()
    await flow.emit(make_message("x"))
    error = await flow.fetch()
    assert isinstance(error, FlowError)
    assert error.node_name == "r"
    assert isinstance(error.unwrap(), KeyError)
    assert str(error.unwrap()) == "\"No successor named 'archive'\""
    assert seen == []


class Search(BaseModel):
    kind: Literal["search"] = "search"
    query: str
    tenant: str


async def test_union_router_policy_sees_the_validated_model(flows: Any) -> None:
    class Sandbox:
        """A policy object: sends the "test" tenant to the sandbox, others as proposed."""

        def __init__(self) -> None:
            self.messages: list[Any] = []

        async def select(self, request: RoutingRequest) -> RoutingDecisionType:
            self.messages.append(request.message)
            return "sandbox" if request.message.tenant == "test" else request.proposed

    seen: list[str] = []
    search, sandbox = sink("search", seen), sink("sandbox", seen)
    policy = Sandbox()
    router = union_router("dispatch", Search, policy=policy)
    flow = flows(router.to(search, sandbox), search.to(), sandbox.to())
    flow.run()
    await flow.emit({"query": "q", "tenant": "test"})
    await flow.emit({"query": "q", "tenant": "acme"})
    assert (await flow.fetch(from_=sandbox)).tenant == "test"
    assert (await flow.fetch(from_=search)).tenant == "acme"
    assert sorted(seen) == ["sandbox", "search"]
    assert policy.messages == [Search(query="q", tenant="test"), Search(query="q", tenant="acme")]


async def test_evaluate_policy_accepts_functions_and_objects(flows: Any) -> None:
    seen: list[str] = []
    out = sink("out", seen)
    router = predicate_router("r", lambda msg: "out")
    flow = flows(router.to(out), out.to())
    request = RoutingRequest(
        message="m", context=flow.contexts[router], node=router, proposed=(out,), trace_id="t"
    )

    class Sync:
        def select(self, request: RoutingRequest) -> RoutingDecisionType:
            return request.proposed_names[0]

    class Async:
        async def select(self, request: RoutingRequest) -> RoutingDecisionType:
            return [request.node_name]

    async def async_fn(request: RoutingRequest) -> RoutingDecisionType:
        return None

    assert await evaluate_policy(Sync(), request) == "out"
    assert await evaluate_policy(Async(), request) == ["r"]
    assert await evaluate_policy(lambda req: req.trace_id, request) == "t"
    assert await evaluate_policy(async_fn, request) is None
    assert await evaluate_policy(DictRoutingPolicy({"t": "out"}), request) == "out"
    assert isinstance(DictRoutingPolicy({}), RoutingPolicy)
    assert not isinstance(async_fn, RoutingPolicy)


def test_dict_policy_keeps_its_own_copy_and_falls_back_to_the_default() -> None:
    mapping: dict[str, RoutingDecisionType] = {"acme": "premium"}
    policy = DictRoutingPolicy(mapping, default="standard", key_getter=lambda r: r.message)
    mapping["acme"] = "hacked"
    request = _request(None)
    request.message = "acme"
    assert policy.select(request) == "premium"
    request.message = "unknown"
    assert policy.select(request) == "standard"
    request.message = None  # no key at all -> default
    assert policy.select(request) == "standard"


def test_dict_policy_rejects_a_non_mapping() -> None:
    with pytest.raises(TypeError, match="mapping must be a mapping of key -> decision, got list"):
        DictRoutingPolicy([("a", "b")])  # type: ignore[arg-type]
    policy = DictRoutingPolicy({})
    with pytest.raises(TypeError, match="got str"):
        policy.update_mapping("a=b")  # type: ignore[arg-type]


def test_from_json_and_json_file(tmp_path: Path) -> None:
    policy = DictRoutingPolicy.from_json('{"t1": "a", "t2": ["a", "b"]}', default="z")
    assert policy.select(_request("t2")) == ["a", "b"]
    assert policy.select(_request("t9")) == "z"

    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"t1": "ünïcode"}), encoding="utf-8")
    from_file = DictRoutingPolicy.from_json_file(str(path))
    assert from_file.select(_request("t1")) == "ünïcode"
    assert from_file.select(_request("t2")) is None

    with pytest.raises(TypeError, match="JSON payload must decode to a mapping"):
        DictRoutingPolicy.from_json('["a", "b"]')
    with pytest.raises(json.JSONDecodeError):
        DictRoutingPolicy.from_json("{not json")


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTES", '{"t1": "a"}')
    policy = DictRoutingPolicy.from_env("ROUTES", default="b")
    assert (policy.select(_request("t1")), policy.select(_request("t2"))) == ("a", "b")

    monkeypatch.setenv("ROUTES_KV", "t1=x,t2=y")

    def parse_pairs(raw: str) -> dict[str, RoutingDecisionType]:
        return {pair.split("=")[0]: pair.split("=")[1] for pair in raw.split(",")}

    custom = DictRoutingPolicy.from_env("ROUTES_KV", loader=parse_pairs)
    assert custom.select(_request("t2")) == "y"

    monkeypatch.delenv("ROUTES_MISSING", raising=False)
    with pytest.raises(KeyError) as missing:
        DictRoutingPolicy.from_env("ROUTES_MISSING")
    assert missing.value.args == ("Environment variable 'ROUTES_MISSING' not set",)
    with pytest.raises(TypeError, match="Policy loader must return a mapping"):
        DictRoutingPolicy.from_env("ROUTES_KV", loader=lambda raw: raw.split(","))  # type: ignore[arg-type,return-value]
