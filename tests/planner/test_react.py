"""ReactPlanner end to end with a scripted LLM: tools, repair, budgets, hints, events."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from penguiflow.planner import (
    PlannerEvent,
    PlannerFinish,
    ReactPlanner,
    Trajectory,
    TrajectorySummary,
)
from penguiflow.planner.clients import LLMReply
from penguiflow.planner.react import _ConstraintTracker
from penguiflow.testkit import ScriptedLLMClient

from .conftest import Calls, act


def planner(catalog: list[Any], *replies: Any, **options: Any) -> ReactPlanner:
    return ReactPlanner(llm_client=ScriptedLLMClient(replies), catalog=catalog, **options)


async def test_sequential_tools_then_finish_as_in_the_spec_illustration(
    catalog: list[Any], calls: Calls
) -> None:
    llm = ScriptedLLMClient(
        [
            act("triage", next_node="triage", args={"text": "How?"}),
            act("retrieve", next_node="retrieve", args={"intent": "docs"}),
            act("wrap up", next_node=None, args={"answer": "..."}),
        ]
    )
    result = await ReactPlanner(llm_client=llm, catalog=catalog).run("How?")

    assert isinstance(result, PlannerFinish)
    assert result.reason == "answer_complete"
    assert result.payload == {"answer": "..."}
    assert result.metadata["step_count"] == 2
    assert result.metadata["constraints"] == {
        "deadline_at": None,
        "deadline_remaining_s": None,
        "hop_budget": None,
        "hops_used": 0,
        "deadline_triggered": False,
        "hop_exhausted": False,
    }
    assert calls.names() == ["triage", "retrieve"]
    third = llm.calls[2]["messages"]
    assert third[1] == {"role": "user", "content": '{"query": "How?"}'}
    assert third[2]["content"] == (
        '{"thought": "triage", "next_node": "triage", "args": {"text": "How?"}}'
    )
    assert third[3]["content"] == '{"observation": {"intent": "docs"}}'
    assert llm.calls[0]["response_format"]["json_schema"]["name"] == "planner_action"


async def test_replies_wrapped_in_fences_or_prose_are_repaired_locally(
    catalog: list[Any], calls: Calls
) -> None:
    fenced = "```json\n" + act(next_node="triage", args={"text": "a"}) + "\n```"
    prose = "Sure! " + act(next_node=None, args={"answer": 1})[:-1] + ",} hope that helps"
    llm = ScriptedLLMClient([fenced, prose])
    result = await ReactPlanner(llm_client=llm, catalog=catalog).run("q")
    assert isinstance(result, PlannerFinish)
    assert result.payload == {"answer": 1}
    assert calls.names() == ["triage"]
    assert len(llm.calls) == 2  # no extra round trip for the repairs


async def test_invalid_replies_are_sent_back_with_the_error_then_the_run_fails(
    catalog: list[Any],
) -> None:
    llm = ScriptedLLMClient(['{"next_node": "triage"}', "not json", '{"thought": 3}'])
    with pytest.raises(RuntimeError, match="failed to produce valid JSON after repair"):
        await ReactPlanner(llm_client=llm, catalog=catalog).run("q")
    repair = llm.calls[1]["messages"][-1]
    assert repair["role"] == "system"
    assert repair["content"].startswith("Previous response was invalid JSON or schema mismatch:")
    assert '"missing"' in repair["content"]
    assert "Previous response" not in llm.calls[2]["messages"][-2]["content"]


async def test_bad_tool_choices_become_error_steps_the_llm_can_read(
    catalog: list[Any], calls: Calls
) -> None:
    p = planner(
        catalog,
        act(next_node="nope", args={}),
        act(next_node="triage", args={"text": 5}),
        act(next_node="fetch", args={"shard": -1}),
        act(next_node="broken", args={"text": "x"}),
        act(next_node="strict", args={"code": "lower"}),
        act(next_node=None, args={"answer": "gave up"}),
    )
    result = await p.run("q")
    assert isinstance(result, PlannerFinish)
    errors = [step["error"] for step in result.metadata["steps"]]
    assert errors[0].startswith("tool 'nope' is not in the catalog. Choose one of: approve, ")
    assert errors[1].startswith("args for tool 'triage' did not validate: [")
    assert errors[2] == "tool 'fetch' raised ValueError: negative shard"
    assert result.metadata["steps"][2]["failure"] == {
        "node": "fetch",
        "args": {"shard": -1},
        "error_code": "ValueError",
        "message": "negative shard",
    }
    assert errors[3].startswith("tool 'broken' returned data that did not validate:")
    # A custom validator's error is serialised safely instead of crashing the run.
    assert "code must be upper case" in errors[4]
    assert calls.names() == ["fetch", "broken"]  # never triage(5) nor strict("lower")


async def test_iteration_limit_hop_budget_and_deadline_end_the_run(catalog: list[Any]) -> None:
    loop_forever = [act(next_node="triage", args={"text": "a"})] * 5
    result = await planner(catalog, *loop_forever, max_iters=3).run("q")
    assert isinstance(result, PlannerFinish)
    assert (result.reason, result.metadata["thought"]) == ("no_path", "iteration limit reached")
    assert result.payload == {"intent": "docs"}

    hops = await planner(catalog, *loop_forever, max_iters=4, hop_budget=2).run("q")
    assert isinstance(hops, PlannerFinish)
    assert hops.reason == "budget_exhausted"
    assert hops.metadata["steps"][2]["error"].startswith("Hop budget exhausted")
    assert hops.metadata["constraints"]["hops_used"] == 2

    clock = iter(range(100))
    late = await planner(
        catalog, *loop_forever, deadline_s=2, time_source=lambda: float(next(clock))
    ).run("q")
    assert isinstance(late, PlannerFinish)
    assert late.reason == "budget_exhausted"
    assert late.metadata["thought"].startswith("Deadline reached.")


async def test_hints_disallow_tools_and_remind_the_preferred_order_once(
    catalog: list[Any], calls: Calls
) -> None:
    p = planner(
        catalog,
        act(next_node="approve", args={"text": "x"}),
        act(next_node="retrieve", args={"intent": "docs"}),
        act(next_node="retrieve", args={"intent": "docs"}),
        act(next_node=None, args={"answer": "ok"}),
        planning_hints={"disallow_nodes": ["approve"], "ordering_hints": ["triage", "retrieve"]},
    )
    result = await p.run("q")
    assert isinstance(result, PlannerFinish)
    steps = result.metadata["steps"]
    assert steps[0]["error"] == (
        "tool 'approve' is not permitted by constraints. Choose an allowed tool or revise the plan."
    )
    assert steps[1]["error"].startswith("Ordering hint reminder: follow the preferred sequence")
    assert steps[2]["error"] is None  # repeating the deviation is allowed
    assert calls.names() == ["retrieve"]
    assert "Disallowed tools: ['approve']" in p._system_prompt


async def test_events_include_llm_calls_with_usage(catalog: list[Any]) -> None:
    events: list[PlannerEvent] = []
    reply = LLMReply(act(next_node=None, args={"a": 1}), prompt_tokens=12, total_tokens=20)
    p = ReactPlanner(
        llm_client=ScriptedLLMClient([reply]), catalog=catalog, event_callback=events.append
    )
    await p.run("q")
    kinds = [e.event_type for e in events]
    assert kinds == ["step_start", "llm_call", "finish"]
    llm_call = events[1]
    assert llm_call.latency_ms is not None
    assert llm_call.latency_ms >= 0
    assert dict(llm_call.extra) == {
        "attempt": 1,
        "purpose": "action",
        "prompt_tokens": 12,
        "total_tokens": 20,
    }
    assert events[-1].to_payload()["reason"] == "answer_complete"


async def test_a_failing_event_callback_is_logged_not_raised(
    catalog: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    def explode(event: PlannerEvent) -> None:
        raise RuntimeError("callback bug")

    p = planner(catalog, act(next_node=None, args={"a": 1}), event_callback=explode)
    with caplog.at_level(logging.ERROR, logger="penguiflow.planner"):
        result = await p.run("q")
    assert isinstance(result, PlannerFinish)
    assert any(r.message == "event_callback_error" for r in caplog.records)


async def first_turn_tokens(catalog: list[Any]) -> int:
    probe = ReactPlanner(llm_client=ScriptedLLMClient(), catalog=catalog)
    return probe._estimate_size(await probe._build_messages(Trajectory(query="q")))


async def test_over_budget_history_is_summarised_by_the_main_llm_without_a_summarizer(
    catalog: list[Any],
) -> None:
    budget = await first_turn_tokens(catalog) + 50  # the first turn fits, the second not
    summary = TrajectorySummary(goals=["q"], facts={"k": "v"}, note=None)
    llm = ScriptedLLMClient(
        [
            act(next_node="retrieve", args={"intent": "x" * 4000}),
            summary.model_dump_json(),  # the summariser call goes to the main LLM
            act(next_node=None, args={"done": True}),
        ]
    )
    p = ReactPlanner(llm_client=llm, catalog=catalog, token_budget=budget)
    result = await p.run("q")
    assert isinstance(result, PlannerFinish)
    assert llm.calls[1]["response_format"]["json_schema"]["name"] == "trajectory_summary"
    condensed = llm.calls[2]["messages"]
    assert condensed[2]["content"].startswith("Trajectory summary: ")
    assert '"note": "llm"' in condensed[2]["content"]
    assert len(condensed) == 5  # system, user, summary, last step's action + observation


async def test_summariser_failure_falls_back_to_the_rule_based_summary(catalog: list[Any]) -> None:
    budget = await first_turn_tokens(catalog) + 50
    llm = ScriptedLLMClient(
        [
            act(next_node="retrieve", args={"intent": "x" * 4000}),
            "not a summary",
            act(next_node=None, args={"done": True}),
        ]
    )
    result = await ReactPlanner(llm_client=llm, catalog=catalog, token_budget=budget).run("q")
    assert isinstance(result, PlannerFinish)
    assert '"note": "rule_based_fallback"' in llm.calls[2]["messages"][2]["content"]


def test_construction_errors_and_defaults(catalog: list[Any]) -> None:
    with pytest.raises(ValueError, match=r"Either catalog or \(nodes and registry\)"):
        ReactPlanner(llm_client=ScriptedLLMClient())
    with pytest.raises(ValueError, match="llm or llm_client must be provided"):
        ReactPlanner(catalog=catalog)
    p = ReactPlanner(llm="openai/gpt-test", catalog=catalog)  # no LiteLLM call, no I/O
    assert type(p._client).__name__ == "_LiteLLMJSONClient"
    assert ReactPlanner.DEFAULT_MAX_PARALLEL == 50
    assert p._system_prompt.startswith("You are the PenguiFlow ReactPlanner")


def test_tracker_snapshots_round_trip() -> None:
    now = [100.0]
    tracker = _ConstraintTracker(deadline_s=10, hop_budget=2, time_source=lambda: now[0])
    tracker.record_hop()
    now[0] = 104.0
    snapshot = tracker.snapshot()
    assert snapshot["deadline_remaining_s"] == 6.0
    now[0] = 500.0  # time spent paused does not count
    restored = _ConstraintTracker.from_snapshot(snapshot, time_source=lambda: now[0])
    assert restored.deadline_at == 506.0
    assert restored.hops_used == 1
    assert restored.has_budget_for_next_tool()


async def test_tool_cancellation_propagates(catalog: list[Any]) -> None:
    slow = ScriptedLLMClient(delay_s=10, default=act(next_node=None, args={}))
    task = asyncio.create_task(ReactPlanner(llm_client=slow, catalog=catalog).run("q"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_response_format_follows_json_schema_mode(catalog: list[Any]) -> None:
    finish = act(next_node=None, args={"answer": "done"})
    plain = ScriptedLLMClient([finish])
    await ReactPlanner(llm_client=plain, catalog=catalog, json_schema_mode=False).run("q")
    assert plain.calls[0]["response_format"] is None
    wants_schema = ScriptedLLMClient([finish], expects_json_schema=True)
    off = ReactPlanner(llm_client=wants_schema, catalog=catalog, json_schema_mode=False)
    await off.run("q")
    assert wants_schema.calls[0]["response_format"] == off._action_schema
    schema = off._action_schema["json_schema"]["schema"]
    assert schema["required"] == ["thought"]
    assert json.dumps(schema)  # serialisable as sent
