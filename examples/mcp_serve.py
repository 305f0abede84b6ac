"""Serve an agent over MCP, then call it with the official MCP client.

`build_planner()` is an ordinary ReactPlanner (its LLM scripted, so the example runs
offline). The example starts the command a user would run,

    penguiflow serve --mcp mcp_serve:build_planner      (from this directory)

as a subprocess speaking MCP over stdio, lists its tools, and calls `ask` with a
progress callback: the progress messages follow the run's steps, and the answer
arrives in pieces as the planner writes it. `--transport http --port 8000` would
serve the same agent at http://127.0.0.1:8000/mcp.

Run: `python examples/mcp_serve.py` (needs `pip install 'penguiflow[mcp]'`).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from penguiflow import Node, ReactPlanner
from penguiflow.testkit import ScriptedLLMClient

HERE = Path(__file__).resolve().parent


class Colony(BaseModel):
    name: str


class Census(BaseModel):
    name: str
    breeding_pairs: int


async def count_colony(args: Colony, ctx: Any) -> Census:
    """How many breeding pairs a penguin colony has."""
    return Census(name=args.name, breeding_pairs={"Cape Crozier": 300_000}.get(args.name, 0))


def scripted_reply(messages: Sequence[Mapping[str, str]]) -> str:
    """The LLM's turn: count the colony first, then answer with what the tool said."""
    if not any(m["role"] == "assistant" for m in messages):
        action = {
            "thought": "count it",
            "next_node": "count_colony",
            "args": {"name": "Cape Crozier"},
        }
    else:
        census = json.loads(messages[-1]["content"])["observation"]
        answer = f"{census['name']} has {census['breeding_pairs']:,} breeding pairs."
        action = {"thought": "answer", "next_node": None, "args": {"answer": answer}}
    return json.dumps(action)


def build_planner() -> ReactPlanner:
    """The agent to serve: one tool, an offline LLM that streams 12 characters at a time."""
    return ReactPlanner(
        llm_client=ScriptedLLMClient(default=scripted_reply, chunk_chars=12),
        nodes=[Node(count_colony, name="count_colony")],
    )


async def main() -> None:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "penguiflow", "serve", "--mcp", "mcp_serve:build_planner"],
        cwd=HERE,  # where `mcp_serve` is importable from
    )
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for tool in (await session.list_tools()).tools:
            fields = ", ".join(tool.input_schema["properties"])
            print(f"tool {tool.name}({fields}), required: {tool.input_schema['required']}")

        async def show(progress: float, total: float | None, message: str | None) -> None:
            print(f"  progress {progress:.0f}: {message}")

        result = await session.call_tool(
            "ask", {"query": "How big is the Cape Crozier colony?"}, progress_callback=show
        )
        print(f"answer: {result.content[0].text}")
        assert result.structured_content is not None
        print(f"tool calls: {result.structured_content['usage']['tool_calls']}")

        wrong = await session.call_tool("ask", {"question": "typo"})
        print(f"error: {wrong.is_error}: {wrong.content[0].text}")
    print("mcp serve example ran.")


if __name__ == "__main__":
    asyncio.run(main())
