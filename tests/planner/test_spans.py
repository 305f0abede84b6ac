"""A planner run as a tree of spans, and its usage: what a recorder sees."""

from __future__ import annotations

import json
from typing import Any

from penguiflow.planner import PlannerFinish, PlannerPause, ReactPlanner
from penguiflow.planner.clients.protocol import LLMReply
from penguiflow.state.memory import InMemoryStateStore
from penguiflow.testkit import ScriptedLLMClient
from penguiflow.tracing import Recorder, Span

from .conftest import act


class Spans:
    """A span sink keeping every span it is told about, in end order."""

    def __init__(self) -> None:
        self.started: list[Span] = []
        self.ended: list[Span] = []

    def span_started(self, span: Span) -> None:
        self.started.append(span)

    def span_ended(self, span: Span) -> None:
        self.ended.append(span)

    def kinds(self) -> list[str]:
        return [s.kind for s in self.ended]

    def of(self, kind: str) -> list[Span]:
        return [s for s in self.ended if s.kind == kind]


def reply(text: str, prompt: int, completion: int, cost: float | None = None) -> LLMReply:
    return LLMReply(
        text,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cost_usd=cost,
        model="gpt-4o-mini",
    )


async def test_a_run_is_a_tree_of_steps_llm_and_tool_calls(catalog: list[Any]) -> None:
    llm = ScriptedLLMClient(
        [
            reply(act("triage", next_node="triage", args={"text": "q"}), 100, 20, cost=0.001),
            reply(
                act(
                    "fan out",
                    plan=[{"node": "fetch", "args": {"shard": n}} for n in (1, 2, 3)],
                    join={"node": "merge", "args": {}},
                ),
                120,
                30,
                cost=0.002,
            ),
            reply(act("done", next_node=None, args={"answer": "60"}), 150, 10, cost=0.0005),
        ]
    )
    planner = ReactPlanner(llm_client=llm, catalog=catalog)
    spans = Spans()
    planner.hooks.span.append(spans)

    result = await planner.run("what is the total?")

    assert isinstance(result, PlannerFinish)
    (root,) = spans.of("run")
    assert root.parent_id is None
    assert root.status == "ok"
    assert root.run_id == result.metadata["run_id"]
    assert root.attributes["query"] == "what is the total?"
    assert root.attributes["reason"] == "answer_complete"
    assert [s.attributes["step"] for s in spans.of("step")] == [0, 1, 2]
    assert {s.parent_id for s in spans.of("step")} == {root.span_id}
    steps = {s.span_id: s for s in spans.of("step")}
    llms = spans.of("llm")
    assert len(llms) == 3
    assert all(s.parent_id in steps for s in llms)
    assert llms[0].attributes["prompt_tokens"] == 100
    assert llms[0].attributes["cost_source"] == "provider"
    assert llms[0].content["messages"][0]["role"] == "system"
    assert "triage" in llms[0].content["reply"]
    tools = spans.of("tool")
    assert [t.name for t in tools] == ["triage", "fetch", "fetch", "fetch"]
    assert sorted(t.attributes["branch"] for t in tools[1:]) == [0, 1, 2]
    assert len({t.parent_id for t in tools[1:]}) == 1  # the branches share their step
    (join,) = spans.of("join")
    assert join.name == "merge"
    assert join.status == "ok"
    assert join.content["result"].total == 60
    assert all(s.run_id == root.run_id for s in spans.ended)

    usage = result.metadata["usage"]
    assert usage["llm_calls"] == 3
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (370, 60)
    assert abs(usage["cost_usd"] - 0.0035) < 1e-12
    assert usage["tool_calls"] == 5
    assert usage["wall_ms"] > 0
    assert root.attributes["cost_usd"] == usage["cost_usd"]


async def test_cost_is_priced_by_model_when_the_provider_reports_none(
    catalog: list[Any],
) -> None:
    from genai_prices import Usage, calc_price

    llm = ScriptedLLMClient([reply(act("done", next_node=None, args={"a": 1}), 1000, 500)])
    result = await ReactPlanner(llm_client=llm, catalog=catalog).run("q")

    assert isinstance(result, PlannerFinish)
    expected = float(
        calc_price(Usage(input_tokens=1000, output_tokens=500), model_ref="gpt-4o-mini").total_price
    )
    assert result.metadata["usage"]["cost_usd"] == expected
    assert result.metadata["usage"]["unpriced_calls"] == 0


async def test_usage_is_counted_without_any_listener(catalog: list[Any]) -> None:
    llm = ScriptedLLMClient(
        [
            act("triage", next_node="triage", args={"text": "q"}),
            act("done", next_node=None, args={"a": 1}),
        ]
    )
    result = await ReactPlanner(llm_client=llm, catalog=catalog).run("q")

    usage = result.metadata["usage"]  # type: ignore[union-attr]
    assert usage["llm_calls"] == 2
    assert usage["unpriced_calls"] == 2  # plain text replies carry no usage
    assert usage["tool_calls"] == 1


async def test_a_failed_tool_call_is_an_error_span(catalog: list[Any]) -> None:
    llm = ScriptedLLMClient(
        [
            act("bad shard", next_node="fetch", args={"shard": -1}),
            act("done", next_node=None, args={"a": 1}),
        ]
    )
    planner = ReactPlanner(llm_client=llm, catalog=catalog)
    spans = Spans()
    planner.hooks.span.append(spans)
    await planner.run("q")

    (tool,) = spans.of("tool")
    assert tool.status == "error"
    assert tool.error_type == "ValueError"
    assert "negative shard" in (tool.error_message or "")
    assert spans.of("step")[0].status == "error"


async def test_a_resumed_run_continues_the_same_run_and_sums_its_usage(
    catalog: list[Any],
) -> None:
    store = InMemoryStateStore()
    first = ReactPlanner(
        llm_client=ScriptedLLMClient(
            [reply(act("ask", next_node="approve", args={"text": "ok?"}), 10, 2, cost=0.01)]
        ),
        catalog=catalog,
        state_store=store,
    )
    recorder = Recorder(store, flush_interval_s=0)
    recorder.attach(first)
    paused = await first.run("needs approval")
    assert isinstance(paused, PlannerPause)
    await recorder.flush()
    (listed,) = await store.list_runs()
    assert listed.status == "paused"

    # Another planner (another process, in real use) resumes from the store.
    second = ReactPlanner(
        llm_client=ScriptedLLMClient(
            [reply(act("done", next_node=None, args={"a": "yes"}), 20, 3, cost=0.02)]
        ),
        catalog=catalog,
        state_store=store,
    )
    recorder.attach(second)
    result = await second.resume(paused.resume_token, user_input="approved")
    await recorder.aclose()

    assert isinstance(result, PlannerFinish)
    assert result.metadata["run_id"] == listed.run_id
    usage = result.metadata["usage"]
    assert usage["llm_calls"] == 2
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (30, 5)
    assert abs(usage["cost_usd"] - 0.03) < 1e-12
    (run,) = await store.list_runs()
    assert run.run_id == listed.run_id
    assert run.status == "ok"
    assert run.attributes["resumes"] == 1
    spans = await store.load_run(run.run_id)
    kinds = [s.kind for s in spans]
    assert kinds.count("run") == 1
    assert "pause" in kinds
    assert "resume" in kinds
    (resume,) = [s for s in spans if s.kind == "resume"]
    assert resume.content["user_input"] == "approved"
    assert recorder.dropped == 0


async def test_a_planner_called_as_a_tool_nests_in_the_callers_run(
    catalog: list[Any],
) -> None:
    from pydantic import BaseModel

    from penguiflow import ModelRegistry, Node, build_catalog

    inner = ReactPlanner(
        llm_client=ScriptedLLMClient(
            [
                reply(act("look", next_node="triage", args={"text": "x"}), 5, 5, cost=0.5),
                reply(act("done", next_node=None, args={"a": "inner"}), 5, 5, cost=0.5),
            ]
        ),
        catalog=catalog,
    )

    class Ask(BaseModel):
        question: str

    class Answer(BaseModel):
        answer: str

    async def delegate(args: Ask, ctx: Any) -> Answer:
        result = await inner.run(args.question)
        return Answer(answer=str(result.payload))

    registry = ModelRegistry()
    registry.register("delegate", Ask, Answer)
    outer = ReactPlanner(
        llm_client=ScriptedLLMClient(
            [
                reply(act("delegate", next_node="delegate", args={"question": "?"}), 1, 1, 0.1),
                reply(act("done", next_node=None, args={"a": "outer"}), 1, 1, cost=0.1),
            ]
        ),
        catalog=build_catalog([Node(delegate, name="delegate")], registry),
    )
    spans = Spans()
    outer.hooks.span.append(spans)
    inner.hooks.span.append(spans)

    result = await outer.run("outer question")

    runs = spans.of("run")
    assert len(runs) == 2
    inner_run, outer_run = runs  # the inner run ends first
    (delegate_span,) = [s for s in spans.of("tool") if s.name == "delegate"]
    assert inner_run.parent_id == delegate_span.span_id
    assert inner_run.run_id == outer_run.run_id
    usage = result.metadata["usage"]  # type: ignore[union-attr]
    assert usage["llm_calls"] == 4  # the inner run's calls are the outer's too
    assert abs(usage["cost_usd"] - 1.2) < 1e-9
    assert usage["tool_calls"] == 2


async def test_a_condensed_history_is_a_summary_span_with_its_llm_call(
    catalog: list[Any],
) -> None:
    summary = json.dumps(
        {"goals": ["q"], "facts": {"n": 1}, "pending": [], "last_output_digest": "x"}
    )
    llm = ScriptedLLMClient(
        [
            reply(summary, 50, 10, cost=0.01),  # every turn is over budget: summarise first
            act("triage", next_node="triage", args={"text": "q"}),
            reply(summary, 50, 10, cost=0.01),
            act("done", next_node=None, args={"a": 1}),
        ]
    )
    planner = ReactPlanner(llm_client=llm, catalog=catalog, token_budget=1)
    spans = Spans()
    planner.hooks.span.append(spans)

    result = await planner.run("q")

    assert isinstance(result, PlannerFinish)
    condensed = spans.of("summary")
    assert len(condensed) == 2
    steps = {s.span_id for s in spans.of("step")}
    for summary_span in condensed:
        assert summary_span.parent_id in steps
        (summariser,) = [s for s in spans.of("llm") if s.parent_id == summary_span.span_id]
        assert summariser.attributes["purpose"] == "summary"
        assert summariser.status == "ok"
    assert result.metadata["usage"]["llm_calls"] == 4
