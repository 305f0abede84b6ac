"""A planner or a flow served over MCP, called with the official client in process
(`mcp.Client(server)`); the transports themselves are in test_server_transports.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import BaseModel

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from mcp.types import CallToolResult, TextContent

from mcp import Client, MCPError
from penguiflow import Message, Node, NodePolicy, create
from penguiflow.errors import InvalidArgumentError
from penguiflow.mcp import mcp_server
from penguiflow.planner import PlannerEvent

from .serve_agents import build_flow, build_planner

ASK_SCHEMA = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "title": "Query", "description": "What to ask the agent."},
        "context": {
            "type": "object",
            "title": "Context",
            "additionalProperties": True,
            "description": "Facts for the agent's tools (the run's context_meta); optional.",
        },
    },
    "required": ["query"],
    "additionalProperties": False,
    "description": "The arguments of a served planner's entry tool.",
}

WEATHER_PROGRESS = [
    "step 1: planning",
    "step 1: called get_weather",
    "step 2: planning",
    # The answer as the planner streams it (the scripted client sends 8 characters
    # at a time), before the run finishes.
    "answer: Sunny i",
    "answer: n Lisbon",
    "answer: , 24 C",
    "finished: answer_complete",
]


class Recorder:
    """A progress callback keeping what the client was told, in order."""

    def __init__(self) -> None:
        self.progress: list[float] = []
        self.messages: list[str | None] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.progress.append(progress)
        self.messages.append(message)


def text(result: CallToolResult) -> str:
    """The text of a tool result (which holds one text block)."""
    (block,) = result.content
    assert isinstance(block, TextContent)
    return block.text


@asynccontextmanager
async def connected(target: Any, **options: Any) -> AsyncIterator[Client]:
    async with Client(mcp_server(target, **options)) as client:
        yield client


async def test_a_planner_is_a_tool_with_a_typed_input_schema() -> None:
    async with connected(build_planner) as client:
        listed = await client.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert list(tools) == ["ask", "resume"]
    assert tools["ask"].input_schema == ASK_SCHEMA
    assert tools["resume"].input_schema["required"] == ["token"]
    assert set(tools["resume"].input_schema["properties"]) == {"token", "user_input"}


async def test_calling_it_runs_the_planner_and_progress_follows_the_steps() -> None:
    progress = Recorder()
    async with connected(build_planner) as client:
        answer = await client.call_tool(
            "ask", {"query": "weather in Lisbon?"}, progress_callback=progress
        )
    assert not answer.is_error
    assert [text(answer)] == ["Sunny in Lisbon, 24 C"]
    structured = answer.structured_content
    assert structured is not None
    assert {k: structured[k] for k in ("status", "reason", "payload")} == {
        "status": "finished",
        "reason": "answer_complete",
        "payload": {"answer": "Sunny in Lisbon, 24 C"},
    }
    assert structured["usage"]["llm_calls"] == 2
    assert structured["usage"]["tool_calls"] == 1
    assert progress.messages == WEATHER_PROGRESS
    assert progress.progress == [float(n) for n in range(1, len(WEATHER_PROGRESS) + 1)]


async def test_the_context_reaches_the_tools_as_context_meta() -> None:
    async with connected(build_planner) as client:
        answer = await client.call_tool("ask", {"query": "weather", "context": {"units": "F"}})
    assert text(answer) == "Sunny in Lisbon, 24 F"


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({}, "invalid arguments for 'ask': query: Field required"),
        ({"query": 7}, "query: Input should be a valid string"),
        ({"query": "hi", "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"query": "hi", "context": "ada"}, "context: Input should be a valid dictionary"),
    ],
)
async def test_invalid_arguments_name_the_field_and_the_server_keeps_working(
    arguments: dict[str, Any], says: str
) -> None:
    async with connected(build_planner) as client:
        wrong = await client.call_tool("ask", arguments)
        right = await client.call_tool("ask", {"query": "weather"})
    assert wrong.is_error
    assert says in text(wrong)
    assert wrong.structured_content is not None
    assert wrong.structured_content["error"] == "invalid_arguments"
    assert not right.is_error
    assert text(right) == "Sunny in Lisbon, 24 C"


async def test_an_unknown_tool_is_a_protocol_error_naming_the_tools() -> None:
    async with connected(build_planner) as client:
        with pytest.raises(MCPError, match=r"unknown tool 'plan'; this server's tools are"):
            await client.call_tool("plan", {"query": "weather"})
        assert not (await client.call_tool("ask", {"query": "weather"})).is_error


async def test_a_pause_answers_its_token_and_resume_continues_the_run() -> None:
    progress = Recorder()
    async with connected(build_planner) as client:
        paused = await client.call_tool("ask", {"query": "book a trip"})
        structured = paused.structured_content
        assert structured is not None
        token = structured["resume_token"]
        assert not paused.is_error
        assert structured == {
            "status": "paused",
            "reason": "approval_required",
            "payload": {"city": "Lisbon"},
            "resume_token": token,
        }
        assert text(paused) == (
            f'paused (approval_required): {{"city": "Lisbon"}}; call \'resume\' with '
            f"token={token!r} (and user_input) to continue"
        )
        done = await client.call_tool(
            "resume", {"token": token, "user_input": "approved"}, progress_callback=progress
        )
        again = await client.call_tool("resume", {"token": token})
    assert not done.is_error
    assert text(done) == "booked: PF-LIS-1"
    assert progress.messages[:3] == [
        "resumed at step 2",
        "step 2: planning",
        "step 2: called confirm_booking",
    ]
    assert progress.messages[-1] == "finished: answer_complete"
    # A token resumes once.
    assert again.is_error
    assert "the agent's run (resume) failed: ResumeError" in text(again)


async def test_a_run_without_an_answer_is_an_error_result_naming_why() -> None:
    async with connected(build_planner) as client:
        stuck = await client.call_tool("ask", {"query": "forever"})
        failing = await client.call_tool("ask", {"query": "explode"})
    assert stuck.is_error
    assert text(stuck) == ("the agent stopped without an answer: no_path (iteration limit reached)")
    assert stuck.structured_content is not None
    assert stuck.structured_content["reason"] == "no_path"
    assert failing.is_error
    assert text(failing) == ("the agent's run (ask) failed: RuntimeError: the provider is down")


async def test_a_slow_run_ends_in_an_error_result_after_timeout_s() -> None:
    async with connected(build_planner(delay_s=5.0), timeout_s=0.05) as client:
        late = await client.call_tool("ask", {"query": "weather"})
    assert late.is_error
    assert text(late) == "no answer within timeout_s=0.05"


async def test_calls_on_one_planner_take_turns() -> None:
    planner = build_planner(delay_s=0.01)
    events: list[tuple[str, int]] = []

    def record(event: PlannerEvent) -> None:
        if event.event_type in ("step_start", "finish"):
            events.append((event.event_type, event.trajectory_step))

    planner.hooks.event.append(record)
    async with connected(planner) as client:
        answers = await asyncio.gather(
            client.call_tool("ask", {"query": "weather"}),
            client.call_tool("ask", {"query": "weather again"}),
        )
    assert [text(a) for a in answers] == ["Sunny in Lisbon, 24 C"] * 2
    one_run = [("step_start", 0), ("step_start", 1), ("finish", 1)]
    assert events == one_run * 2  # never interleaved


async def test_the_entry_tool_can_be_renamed_but_not_to_resume() -> None:
    async with connected(build_planner, tool="weather", description="Ask about weather.") as c:
        listed = await c.list_tools()
    assert (listed.tools[0].name, listed.tools[0].description) == (
        "weather",
        "Ask about weather.",
    )
    with pytest.raises(InvalidArgumentError, match="tool='resume' is taken"):
        mcp_server(build_planner, tool="resume")


def test_only_a_planner_or_a_flow_can_be_served() -> None:
    with pytest.raises(InvalidArgumentError, match=r"a ReactPlanner or a PenguiFlow .* got int"):
        mcp_server(lambda: 42)  # type: ignore[arg-type, return-value]
    with pytest.raises(InvalidArgumentError, match="got str"):
        mcp_server("planner")  # type: ignore[arg-type]


# -- flows ---------------------------------------------------------------------------

TICKET_SCHEMA = {
    "type": "object",
    "title": "Ticket",
    "description": "A support ticket.",
    "properties": {
        "customer": {"type": "string", "title": "Customer"},
        "text": {"type": "string", "title": "Text"},
        "priority": {
            "type": "integer",
            "title": "Priority",
            "default": 1,
            "minimum": 1,
            "maximum": 5,
        },
    },
    "required": ["customer", "text"],
}


async def test_a_flow_is_a_tool_typed_by_its_entry_node_and_runs_per_call() -> None:
    progress = Recorder()
    async with connected(build_flow) as client:
        (tool,) = (await client.list_tools()).tools
        answer = await client.call_tool(
            "triage", {"customer": "ada", "text": "my invoice"}, progress_callback=progress
        )
        other = await client.call_tool("triage", {"customer": "bob", "text": "hello"})
    assert (tool.name, tool.description) == ("triage", "Route a support ticket and answer it.")
    assert tool.input_schema == TICKET_SCHEMA
    assert not answer.is_error
    assert answer.structured_content == {
        "result": {"customer": "ada", "reply": "billing will write to you"}
    }
    assert text(answer) == ('{"customer": "ada", "reply": "billing will write to you"}')
    assert other.structured_content == {
        "result": {"customer": "bob", "reply": "support will write to you"}
    }
    assert progress.messages == [
        "triage: started",
        "triage: done",
        "respond: started",
        "respond: done",
    ]


async def test_invalid_flow_input_names_the_field_and_never_reaches_the_flow() -> None:
    flow = build_flow()
    reached: list[str | None] = []
    flow.hooks.event.append(lambda event: reached.append(event.node_name))
    async with connected(flow) as client:
        wrong = await client.call_tool("triage", {"customer": "ada", "text": "x", "priority": 9})
        missing = await client.call_tool("triage", {"customer": "ada"})
        assert reached == []
        right = await client.call_tool("triage", {"customer": "ada", "text": "x"})
    assert wrong.is_error
    assert text(wrong) == (
        "invalid arguments for 'triage': priority: Input should be less than or equal to 5"
    )
    assert "text: Field required" in text(missing)
    assert not right.is_error


async def test_the_server_starts_and_stops_the_flow_but_leaves_a_running_one_running() -> None:
    flow = build_flow()
    assert flow.state.value == "created"
    async with connected(flow):
        assert flow.state.value == "running"
    assert flow.state.value == "stopped"

    running = build_flow()
    running.run()
    try:
        async with connected(running) as client:
            assert not (await client.call_tool("triage", {"customer": "a", "text": "b"})).is_error
        assert running.state.value == "running"
    finally:
        await running.stop()


class Order(BaseModel):
    order: str


async def ship(order: Order, ctx: Any) -> Order:
    raise ValueError(f"order {order.order} is on hold")


async def test_a_failing_node_is_an_error_result() -> None:
    async with connected(create(Node(ship, name="ship").to())) as client:
        failed = await client.call_tool("ship", {"order": "A-1"})
    assert failed.is_error
    said = text(failed)
    assert said.startswith("the flow (ship) failed: FlowError: ")
    assert "order A-1 is on hold" in said


async def test_an_untyped_entry_node_takes_any_payload() -> None:
    async def echo(message: Any, ctx: Any) -> Any:
        return message

    async with connected(create(Node(echo, name="echo node").to())) as client:
        (tool,) = (await client.list_tools()).tools
        answer = await client.call_tool("run", {"payload": {"a": [1, 2]}})
        wrong = await client.call_tool("run", {"a": 1})
    assert tool.name == "run"  # "echo node" is not a valid tool name
    assert tool.input_schema["required"] == ["payload"]
    assert answer.structured_content == {"result": {"a": [1, 2]}}
    assert wrong.is_error


def test_a_flow_needs_exactly_one_entry_node() -> None:
    async def a(message: Any, ctx: Any) -> Any:
        return message

    async def b(message: Any, ctx: Any) -> Any:
        return message

    flow = create(Node(a, name="a").to(), Node(b, name="b").to())
    with pytest.raises(InvalidArgumentError, match=r"needs one entry node .* has 2: \['a', 'b'\]"):
        mcp_server(flow)


async def write_reply(message: Message, ctx: Any) -> Message:
    for piece in ("Dear ", "Ada, ", "noted."):
        await ctx.emit_chunk(parent=message, text=piece)
    await ctx.emit_chunk(parent=message, text="", done=True)
    return message.model_copy(update={"payload": "Dear Ada, noted."})


async def test_a_flows_stream_chunks_are_progress_and_its_result_the_answer() -> None:
    progress = Recorder()
    flow = create(Node(write_reply, name="write_reply", policy=NodePolicy(validate="none")).to())
    async with connected(flow) as client:
        answer = await client.call_tool(
            "write_reply", {"payload": "a note"}, progress_callback=progress
        )
    assert text(answer) == "Dear Ada, noted."
    assert progress.messages == [
        "write_reply: started",
        "answer: Dear ",
        "answer: Ada, ",
        "answer: noted.",
        "write_reply: done",
    ]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"tool": "ask me"}, "tool='ask me' is not a tool name MCP allows"),
        ({"tool": ""}, "tool='' is not a tool name MCP allows"),
        ({"timeout_s": 0}, "timeout_s must be > 0 or None, got 0"),
    ],
)
def test_wrong_options_are_named(options: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape(says)):
        mcp_server(build_planner, **options)
