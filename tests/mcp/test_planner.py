"""A ReactPlanner calling MCP tools of real servers, driven by a scripted LLM."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from penguiflow import build_catalog
from penguiflow.mcp import MCPToolset
from penguiflow.planner import PlannerFinish, ReactPlanner, prompts
from penguiflow.testkit import ScriptedLLMClient

from .conftest import act, server_saw, stdio_toolset

FINISH = act("done", next_node=None, args={"answer": "done"})


def steps(result: Any) -> list[dict[str, Any]]:
    assert isinstance(result, PlannerFinish)
    return [
        {key: step[key] for key in ("observation", "error") if step.get(key) is not None}
        for step in result.metadata["steps"]
    ]


class Word(BaseModel):
    word: str


async def shout(args: Word, ctx: Any) -> Word:
    return Word(word=args.word.upper())


async def test_the_planner_calls_an_mcp_tool_beside_a_node_tool(demo: MCPToolset) -> None:
    llm = ScriptedLLMClient(
        [
            act(next_node="shout", args={"word": "hi"}),
            act(next_node="add", args={"a": 2, "b": 40}),
            act(next_node="greet", args={"name": "Ada"}),
            FINISH,
        ]
    )
    planner = ReactPlanner(llm_client=llm, catalog=[*build_catalog([shout]), *demo.specs])
    result = await planner.run("q")
    assert steps(result)[:3] == [
        {"observation": {"word": "HI"}},
        {"observation": {"result": 42}},
        {"observation": {"text": "Hello, Ada!", "structured": None, "blocks": []}},
    ]
    assert result.metadata["usage"]["tool_calls"] == 3  # MCP calls count like any tool's
    system_prompt = llm.calls[0]["messages"][0]["content"]
    assert "- name: add" in system_prompt
    assert "- name: shout" in system_prompt


async def test_invalid_args_go_back_to_the_llm_and_never_reach_the_server(
    demo: MCPToolset,
) -> None:
    llm = ScriptedLLMClient([act(next_node="add", args={"a": "two", "b": 1}), FINISH])
    result = await ReactPlanner(llm_client=llm, toolsets=[demo]).run("q")
    (error,) = [step["error"] for step in steps(result) if "error" in step]
    assert error.startswith("args for tool 'add' did not validate: ")
    assert "'two' is not of type 'integer'" in error
    assert (await server_saw(demo))["calls"] == []


async def test_the_hop_budget_holds_for_mcp_calls(demo: MCPToolset) -> None:
    add = act(next_node="add", args={"a": 1, "b": 1})
    llm = ScriptedLLMClient([add, add, FINISH])
    result = await ReactPlanner(llm_client=llm, toolsets=[demo], hop_budget=1).run("q")
    assert steps(result)[:2] == [
        {"observation": {"result": 2}},
        {"error": prompts.render_hop_budget_violation(1)},
    ]
    assert (await server_saw(demo))["calls"] == [{"tool": "add", "args": {"a": 1, "b": 1}}]


async def test_an_error_result_is_a_failed_step(demo: MCPToolset) -> None:
    llm = ScriptedLLMClient([act(next_node="fail", args={"message": "disk full"}), FINISH])
    result = await ReactPlanner(llm_client=llm, toolsets=[demo]).run("q")
    assert steps(result)[0] == {
        "error": "tool 'fail' raised MCPToolError: MCP server 'demo' reported an error from "
        "tool 'fail': Error executing tool fail: disk full"
    }


async def test_a_parallel_plan_runs_its_calls_concurrently_over_one_session(
    demo: MCPToolset,
) -> None:
    plan = [{"node": "wait", "args": {"seconds": 0.3}} for _ in range(2)]
    llm = ScriptedLLMClient([act(plan=plan), FINISH])
    result = await ReactPlanner(llm_client=llm, toolsets=[demo]).run("q")
    branches = steps(result)[0]["observation"]["branches"]
    assert [b["observation"] for b in branches] == [{"result": "waited 0.3s"}] * 2
    assert (await server_saw(demo))["max_active"] == 2


async def test_cancelling_the_run_cancels_the_mcp_request(demo: MCPToolset) -> None:
    llm = ScriptedLLMClient([act(next_node="wait", args={"seconds": 5}), FINISH])
    planner = ReactPlanner(llm_client=llm, toolsets=[demo])
    try:
        async with asyncio.timeout(0.3):
            await planner.run("q")
    except TimeoutError:
        pass
    else:
        raise AssertionError("the run should have been cancelled")
    await asyncio.sleep(0.1)
    assert (await server_saw(demo))["cancelled"] == ["wait"]


async def test_a_tool_timeout_is_a_failed_step_the_llm_sees() -> None:
    async with stdio_toolset(timeout_s=0.2, allow=["wait", "add"]) as demo:
        llm = ScriptedLLMClient(
            [
                act(next_node="wait", args={"seconds": 5}),
                act(next_node="add", args={"a": 1, "b": 1}),
                FINISH,
            ]
        )
        result = await ReactPlanner(llm_client=llm, toolsets=[demo]).run("q")
        assert steps(result)[:2] == [
            {
                "error": "tool 'wait' raised MCPTimeoutError: MCP server 'demo' gave no result "
                "for 'wait' within 0.2s; the request was cancelled"
            },
            {"observation": {"result": 2}},
        ]


async def test_a_crash_is_a_typed_failure_and_the_next_step_reconnects(demo: MCPToolset) -> None:
    llm = ScriptedLLMClient(
        [act(next_node="crash", args={}), act(next_node="add", args={"a": 1, "b": 2}), FINISH]
    )
    result = await ReactPlanner(llm_client=llm, toolsets=[demo]).run("q")
    crashed, added = steps(result)[:2]
    assert crashed["error"].startswith(
        "tool 'crash' raised MCPConnectionError: the connection to MCP server 'demo' closed "
        "during a call to 'crash'"
    )
    assert added == {"observation": {"result": 3}}


async def test_the_next_step_sees_tools_the_server_added(demo: MCPToolset) -> None:
    llm = ScriptedLLMClient(
        [act(next_node="grow", args={}), act(next_node="double", args={"x": 21}), FINISH]
    )
    result = await ReactPlanner(llm_client=llm, toolsets=[demo]).run("q")
    assert steps(result)[:2] == [
        {"observation": {"result": "grown"}},
        {"observation": {"result": 42}},
    ]
    first, second = (call["messages"][0]["content"] for call in llm.calls[:2])
    assert "- name: double" not in first
    assert "- name: double" in second


async def test_allow_and_deny_lists_decide_what_the_llm_may_call() -> None:
    async with stdio_toolset(allow=["add", "crash"], deny=["crash"]) as demo:
        llm = ScriptedLLMClient([act(next_node="crash", args={}), FINISH])
        result = await ReactPlanner(llm_client=llm, toolsets=[demo]).run("q")
        error = steps(result)[0]["error"]
        assert error == prompts.render_invalid_node("crash", ["add"])
        prompt = llm.calls[0]["messages"][0]["content"]
        assert "- name: add" in prompt
        assert "- name: crash" not in prompt
        assert (await server_saw(demo))["calls"] == []
