"""`penguiflow serve --mcp MODULE:FACTORY` in a subprocess, called with the official
MCP client over stdio and over streamable HTTP."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from mcp.client.streamable_http import streamable_http_client

from mcp import ClientSession, StdioServerParameters, stdio_client

from .test_server import ASK_SCHEMA, TICKET_SCHEMA, WEATHER_PROGRESS, Recorder, text

ROOT = Path(__file__).resolve().parents[2]
PLANNER = "tests.mcp.serve_agents:build_planner"
FLOW = "tests.mcp.serve_agents:build_flow"
SERVE = [sys.executable, "-m", "penguiflow", "serve", "--mcp"]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}


@asynccontextmanager
async def over_stdio(spec: str) -> AsyncIterator[ClientSession]:
    command = StdioServerParameters(
        command=sys.executable,
        args=[*SERVE[1:], spec],
        cwd=ROOT,
        env={"PYTHONPATH": ENV["PYTHONPATH"]},
    )
    async with stdio_client(command) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=20) as session:
            await session.initialize()
            yield session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def http_server(spec: str) -> Iterator[str]:
    """`penguiflow serve --mcp SPEC --transport http` on a free port; its URL once it
    says it listens."""
    port = free_port()
    process = subprocess.Popen(
        [*SERVE, spec, "--transport", "http", "--port", str(port)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = f"http://127.0.0.1:{port}/mcp"
        assert line == f"serving {spec} over MCP on {url}\n", process.stderr.read()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@asynccontextmanager
async def over_http(url: str) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=20) as session:
            await session.initialize()
            yield session


async def test_a_planner_over_stdio_answers_with_progress_in_step_order() -> None:
    progress = Recorder()
    async with over_stdio(PLANNER) as session:
        tools = (await session.list_tools()).tools
        answer = await session.call_tool(
            "ask", {"query": "weather in Lisbon?"}, progress_callback=progress
        )
        wrong = await session.call_tool("ask", {"question": "weather?"})
        paused = await session.call_tool("ask", {"query": "book a trip"})
        assert paused.structured_content is not None
        token = paused.structured_content["resume_token"]
        resumed = await session.call_tool("resume", {"token": token, "user_input": "yes"})
    assert [t.name for t in tools] == ["ask", "resume"]
    assert tools[0].input_schema == ASK_SCHEMA
    assert text(answer) == "Sunny in Lisbon, 24 C"
    assert progress.messages == WEATHER_PROGRESS
    assert wrong.is_error
    assert text(wrong) == (
        "invalid arguments for 'ask': query: Field required; "
        "question: Extra inputs are not permitted"
    )
    assert paused.structured_content["reason"] == "approval_required"
    assert text(resumed) == "booked: PF-LIS-1"


async def test_a_flow_over_stdio_is_its_entry_node_as_a_tool() -> None:
    progress = Recorder()
    async with over_stdio(FLOW) as session:
        (tool,) = (await session.list_tools()).tools
        answer = await session.call_tool(
            "triage", {"customer": "ada", "text": "an invoice"}, progress_callback=progress
        )
        wrong = await session.call_tool("triage", {"customer": "ada", "text": 3})
    assert (tool.name, tool.input_schema) == ("triage", TICKET_SCHEMA)
    assert answer.structured_content == {
        "result": {"customer": "ada", "reply": "billing will write to you"}
    }
    assert progress.messages == [
        "triage: started",
        "triage: done",
        "respond: started",
        "respond: done",
    ]
    assert wrong.is_error
    assert "text: Input should be a valid string" in text(wrong)


async def test_a_planner_over_streamable_http_answers_concurrent_clients() -> None:
    with http_server(PLANNER) as url:
        async with over_http(url) as first, over_http(url) as second:
            tools = (await first.list_tools()).tools
            progress = Recorder()
            answers = await asyncio.gather(
                first.call_tool("ask", {"query": "weather"}, progress_callback=progress),
                second.call_tool("ask", {"query": "weather", "context": {"units": "F"}}),
            )
            wrong = await second.call_tool("ask", {"query": None})
            again = await second.call_tool("ask", {"query": "weather"})
    assert tools[0].input_schema == ASK_SCHEMA
    texts = [text(a) for a in answers]
    assert texts == ["Sunny in Lisbon, 24 C", "Sunny in Lisbon, 24 F"]
    assert progress.messages == WEATHER_PROGRESS
    assert wrong.is_error
    assert "query: Input should be a valid string" in text(wrong)
    assert not again.is_error


async def test_a_flow_over_streamable_http() -> None:
    with http_server(FLOW) as url:
        async with over_http(url) as session:
            answer = await session.call_tool("triage", {"customer": "bob", "text": "hi"})
    assert answer.structured_content == {
        "result": {"customer": "bob", "reply": "support will write to you"}
    }
