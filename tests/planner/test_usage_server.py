"""A run's usage and cost against a real OpenAI-compatible server, through both clients.

The planner's totals (`PlannerFinish.metadata["usage"]`) must equal what the server
reported, call by call: tokens as sent, cost as the provider sent it, else priced by
model name with `genai-prices`, else counted unpriced.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from penguiflow.planner import PlannerEvent, PlannerFinish, PlannerPause, ReactPlanner
from penguiflow.planner.clients import LLMReply, OpenAICompatibleClient
from penguiflow.state.memory import InMemoryStateStore
from penguiflow.testkit import ScriptedLLMServer, ServerReply
from penguiflow.tracing import Span

from .conftest import act


class LLMSpans:
    """A span sink keeping the ended `llm` spans."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    def span_started(self, span: Span) -> None:
        """Only ended spans matter here."""

    def span_ended(self, span: Span) -> None:
        if span.kind == "llm":
            self.spans.append(span)


def tokens(prompt: int, completion: int, **extra: Any) -> dict[str, Any]:
    """A server `usage` object."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        **extra,
    }


def answered(script: Sequence[ServerReply]) -> list[dict[str, Any]]:
    """The usage of every scripted reply that is a completion (faults carry none)."""
    return [dict(r.usage) for r in script if r.status == 200 and r.usage is not None]


def totals(usages: Sequence[dict[str, Any]]) -> dict[str, int]:
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {"llm_calls": len(usages)} | {k: sum(u[k] for u in usages) for k in keys}


def table_price(model: str, usage: dict[str, Any]) -> float:
    """What `genai-prices` says a call to `model` costs."""
    priced = calc_price(
        PriceUsage(input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"]),
        model_ref=model,
    )
    return float(priced.total_price)


def tool_then_parallel_then_finish(*usages: dict[str, Any]) -> list[ServerReply]:
    """A triage call, a retried 500, a 3-branch plan with a join, and a finish."""
    first, second, third = usages
    return [
        ServerReply(act("triage", next_node="triage", args={"text": "q"}), usage=first),
        ServerReply.error(500),  # retried by the client: still one call
        ServerReply(
            act(
                "fan out",
                plan=[{"node": "fetch", "args": {"shard": n}} for n in (1, 2, 3)],
                join={"node": "merge", "args": {}},
            ),
            usage=second,
        ),
        ServerReply(act("done", next_node=None, args={"answer": "60"}), usage=third),
    ]


def native(server: ScriptedLLMServer) -> OpenAICompatibleClient:
    return OpenAICompatibleClient(
        server.base_url, server.model, api_key="test", backoff_base_s=0.001, timeout_s=10.0
    )


def litellm_config(server: ScriptedLLMServer) -> dict[str, Any]:
    return {"model": f"openai/{server.model}", "api_base": server.base_url, "api_key": "test"}


@pytest.fixture
def litellm(monkeypatch: pytest.MonkeyPatch) -> Any:
    # LiteLLM's bundled price table, not a download of it at import.
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return pytest.importorskip("litellm")


@pytest.fixture
def server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer(model="gpt-4o-mini") as running:
        yield running


async def run(
    planner: ReactPlanner, query: str = "what is the total?"
) -> tuple[dict[str, Any], list[Mapping[str, Any]], list[Span]]:
    """Run to the finish; return the usage, the `llm_call` extras and the `llm` spans."""
    events: list[PlannerEvent] = []
    planner.hooks.event.append(events.append)
    spans = LLMSpans()
    planner.hooks.span.append(spans)
    result = await planner.run(query)
    assert isinstance(result, PlannerFinish), result
    calls = [e.extra for e in events if e.event_type == "llm_call"]
    return result.metadata["usage"], calls, spans.spans


def priced(calls: Sequence[Mapping[str, Any]]) -> list[tuple[Any, Any, Any]]:
    return [(c.get("model"), c.get("cost_source"), c.get("cost_usd")) for c in calls]


async def test_tokens_and_cost_are_what_the_server_reported_priced_by_its_model(
    server: ScriptedLLMServer, catalog: list[Any]
) -> None:
    script = tool_then_parallel_then_finish(tokens(100, 20), tokens(120, 30), tokens(150, 10))
    server.add(*script)
    async with native(server) as client:
        usage, calls, spans = await run(ReactPlanner(llm_client=client, catalog=catalog))

    reported = answered(script)
    prices = [table_price(server.model, u) for u in reported]
    assert len(server.requests) == 4  # one call needed two attempts
    assert {k: usage[k] for k in totals(reported)} == totals(reported)
    assert usage["cost_usd"] == pytest.approx(math.fsum(prices), rel=1e-9)
    assert usage["unpriced_calls"] == 0
    assert usage["tool_calls"] == 5  # triage, 3 branches, the join
    assert priced(calls) == [("gpt-4o-mini", "price_table", p) for p in prices]
    assert [(s.name, s.attributes["cost_source"], s.attributes["cost_usd"]) for s in spans] == [
        ("gpt-4o-mini", "price_table", p) for p in prices
    ]
    assert [s.attributes["prompt_tokens"] for s in spans] == [u["prompt_tokens"] for u in reported]


async def test_a_cost_the_provider_reports_is_used_as_reported(
    server: ScriptedLLMServer, catalog: list[Any]
) -> None:
    script = tool_then_parallel_then_finish(
        tokens(100, 20, cost=0.0021),  # OpenRouter's field
        tokens(120, 30, cost_usd=0.0005),
        tokens(150, 10, cost="n/a"),  # not a number: priced by the table instead
    )
    server.add(*script)
    async with native(server) as client:
        usage, calls, spans = await run(ReactPlanner(llm_client=client, catalog=catalog))

    first, second, third = answered(script)
    expected = [
        ("gpt-4o-mini", "provider", first["cost"]),
        ("gpt-4o-mini", "provider", second["cost_usd"]),
        ("gpt-4o-mini", "price_table", table_price(server.model, third)),
    ]
    assert priced(calls) == expected
    assert [(s.name, s.attributes["cost_source"], s.attributes["cost_usd"]) for s in spans] == (
        expected
    )
    assert usage["cost_usd"] == pytest.approx(math.fsum(c for *_, c in expected), rel=1e-9)
    assert usage["unpriced_calls"] == 0
    assert {k: usage[k] for k in totals(answered(script))} == totals(answered(script))


@pytest.mark.parametrize(
    ("reported", "cost"),
    [
        pytest.param({"cost": 0.25}, 0.25, id="cost"),
        pytest.param({"cost_usd": 1}, 1.0, id="cost_usd-int"),
        pytest.param({"cost": 0}, 0.0, id="free"),
        pytest.param({"cost": None, "cost_usd": 0.5}, 0.5, id="cost-null"),
        pytest.param({"cost": "0.25"}, None, id="string"),
        pytest.param({"cost": -0.1}, None, id="negative"),
        pytest.param({"cost": math.nan}, None, id="nan"),
        pytest.param({"cost": math.inf}, None, id="inf"),
        pytest.param({"cost": True}, None, id="bool"),
        pytest.param({"cost": {"total": 1}}, None, id="object"),
        pytest.param({}, None, id="absent"),
    ],
)
async def test_the_native_client_reads_only_a_valid_provider_cost(
    server: ScriptedLLMServer, reported: dict[str, Any], cost: float | None
) -> None:
    server.add(ServerReply('{"ok": true}', usage=tokens(3, 4, **reported)))
    async with native(server) as client:
        assert client.model == "gpt-4o-mini"
        reply = await client.complete(messages=[{"role": "user", "content": "hi"}])
    assert isinstance(reply, LLMReply)
    assert (reply.prompt_tokens, reply.completion_tokens, reply.total_tokens) == (3, 4, 7)
    assert reply.cost_usd == cost


async def test_through_litellm_tokens_are_the_servers_and_cost_is_litellms(
    server: ScriptedLLMServer, catalog: list[Any], litellm: Any
) -> None:
    script = tool_then_parallel_then_finish(tokens(100, 20), tokens(120, 30), tokens(150, 10))
    server.add(*script)
    planner = ReactPlanner(llm=litellm_config(server), catalog=catalog)
    usage, calls, spans = await run(planner)

    # The rule: the cost LiteLLM reports for the call (here from its own price table
    # for the server's model) is used, and labelled as LiteLLM's.
    reported = answered(script)
    costs = [
        sum(
            litellm.cost_per_token(
                model=server.model,
                prompt_tokens=u["prompt_tokens"],
                completion_tokens=u["completion_tokens"],
                custom_llm_provider="openai",
            )
        )
        for u in reported
    ]
    assert {k: usage[k] for k in totals(reported)} == totals(reported)
    assert [(m, s) for m, s, _ in priced(calls)] == [("gpt-4o-mini", "litellm")] * 3
    assert [c for *_, c in priced(calls)] == pytest.approx(costs, rel=1e-9)
    assert [s.attributes["cost_source"] for s in spans] == ["litellm"] * 3
    assert usage["cost_usd"] == pytest.approx(math.fsum(costs), rel=1e-9)
    assert usage["unpriced_calls"] == 0


async def test_through_litellm_a_cost_the_provider_reports_wins(
    server: ScriptedLLMServer, catalog: list[Any], litellm: Any
) -> None:
    server.add(
        ServerReply(act("done", next_node=None, args={"a": 1}), usage=tokens(100, 20, cost=0.5))
    )
    usage, calls, _ = await run(ReactPlanner(llm=litellm_config(server), catalog=catalog))
    assert priced(calls) == [("gpt-4o-mini", "provider", 0.5)]
    assert (usage["cost_usd"], usage["unpriced_calls"]) == (0.5, 0)


async def test_through_litellm_a_zero_from_its_price_table_is_no_cost(
    catalog: list[Any], litellm: Any
) -> None:
    # A model LiteLLM's table lists at 0 (as it does for local providers): LiteLLM
    # reports 0, which is "no price known", not "free". A 0 the provider itself
    # reports is kept.
    litellm.register_model(
        {
            "free-local": {
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
                "litellm_provider": "openai",
                "mode": "chat",
            }
        }
    )
    try:
        with ScriptedLLMServer(model="free-local") as server:
            server.add(
                ServerReply(
                    act("tool", next_node="triage", args={"text": "q"}), usage=tokens(9, 1)
                ),
                ServerReply(act("done", next_node=None, args={"a": 1}), usage=tokens(8, 2, cost=0)),
            )
            usage, calls, _ = await run(ReactPlanner(llm=litellm_config(server), catalog=catalog))
    finally:
        litellm.model_cost.pop("free-local", None)
    assert priced(calls) == [("free-local", None, None), ("free-local", "provider", 0.0)]
    assert (usage["llm_calls"], usage["unpriced_calls"], usage["cost_usd"]) == (2, 1, 0.0)


async def test_a_paused_run_resumed_by_another_planner_sums_both_parts(
    server: ScriptedLLMServer, catalog: list[Any]
) -> None:
    script = [
        ServerReply(act("triage", next_node="triage", args={"text": "q"}), usage=tokens(100, 20)),
        ServerReply(act("ask", next_node="approve", args={"text": "ok?"}), usage=tokens(120, 30)),
        ServerReply(act("done", next_node=None, args={"a": "yes"}), usage=tokens(150, 10)),
    ]
    server.add(*script)
    store = InMemoryStateStore()
    async with native(server) as client:
        first = ReactPlanner(llm_client=client, catalog=catalog, state_store=store)
        paused = await first.run("needs approval")
    assert isinstance(paused, PlannerPause)

    # Another planner, with its own client (another process, in real use).
    async with native(server) as client:
        second = ReactPlanner(llm_client=client, catalog=catalog, state_store=store)
        result = await second.resume(paused.resume_token, user_input="approved")

    assert isinstance(result, PlannerFinish)
    reported = answered(script)
    usage = result.metadata["usage"]
    assert {k: usage[k] for k in totals(reported)} == totals(reported)
    prices = [table_price(server.model, u) for u in reported]
    assert usage["cost_usd"] == pytest.approx(math.fsum(prices), rel=1e-9)
    assert (usage["unpriced_calls"], usage["tool_calls"]) == (0, 2)


@pytest.mark.parametrize("through", ["native", "litellm"])
async def test_an_unknown_model_is_counted_unpriced_never_guessed(
    catalog: list[Any], through: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ScriptedLLMServer(model="local-qwen") as server:
        script = [
            ServerReply(act("tool", next_node="triage", args={"text": "q"}), usage=tokens(100, 20)),
            ServerReply(act("done", next_node=None, args={"a": 1}), usage=tokens(150, 10)),
        ]
        server.add(*script)
        if through == "native":
            async with native(server) as client:
                usage, calls, spans = await run(ReactPlanner(llm_client=client, catalog=catalog))
        else:
            monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            pytest.importorskip("litellm")
            planner = ReactPlanner(llm=litellm_config(server), catalog=catalog)
            usage, calls, spans = await run(planner)

    reported = answered(script)
    assert {k: usage[k] for k in totals(reported)} == totals(reported)
    assert usage["cost_usd"] == 0.0
    assert usage["unpriced_calls"] == usage["llm_calls"] == 2
    assert priced(calls) == [("local-qwen", None, None)] * 2
    assert [s.attributes.get("cost_usd") for s in spans] == [None, None]
    assert json.dumps(usage)  # plain JSON data
