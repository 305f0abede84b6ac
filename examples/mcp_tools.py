"""An agent that uses a tool of an MCP server: offline, the server started by the example.

`MCPToolset.stdio(...)` starts examples/mcp_weather_server.py as a subprocess and
lists its tools; `ReactPlanner(toolsets=[weather])` puts them in the catalog beside
a local node tool. The LLM is `ScriptedLLMClient` (it replays what a model would
reply), so this runs without a network or an API key. The first forecast request
names a city the server does not know: the server flags the result as an error, the
LLM reads it as a failed step and asks again.

Needs the extra: `pip install 'penguiflow[mcp]'`. Run: `python examples/mcp_tools.py`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from penguiflow import build_catalog
from penguiflow.mcp import MCPToolset
from penguiflow.planner import PlannerFinish, ReactPlanner
from penguiflow.testkit import ScriptedLLMClient

SERVER = Path(__file__).with_name("mcp_weather_server.py")


class Trip(BaseModel):
    traveller: str


class Destination(BaseModel):
    city: str


async def pick_destination(args: Trip, ctx: Any) -> Destination:
    """Where the traveller is going (a local node tool)."""
    return Destination(city="Lisbon" if args.traveller == "Ada" else "Oslo")


def reply(thought: str, next_node: str | None, args: dict[str, Any]) -> str:
    return json.dumps({"thought": thought, "next_node": next_node, "args": args})


SCRIPT = [
    reply("Find where Ada travels.", "pick_destination", {"traveller": "Ada"}),
    reply("Get the forecast there.", "forecast", {"city": "Lisbonne"}),
    reply("That name failed; use the English one.", "forecast", {"city": "Lisbon"}),
    reply(
        "The forecast answers the query.",
        None,
        {"answer": "Ada flies to Lisbon tomorrow: 22 C and clear skies."},
    ),
]


async def main() -> None:
    async with MCPToolset.stdio(sys.executable, [str(SERVER)], name="weather") as weather:
        print(f"MCP server {weather.name!r} offers: {', '.join(weather.tools)}")
        planner = ReactPlanner(
            llm_client=ScriptedLLMClient(SCRIPT),
            catalog=build_catalog([pick_destination]),
            toolsets=[weather],
        )
        result = await planner.run("What weather will Ada have tomorrow?")
    assert isinstance(result, PlannerFinish)
    for step in result.metadata["steps"]:
        action = step["action"]
        outcome = step.get("observation") if step.get("error") is None else step["error"]
        print(f"  {action.get('next_node') or 'finish'}({action.get('args')}) => {outcome}")
    print(f"Finished ({result.reason}): {result.payload['answer']}")


if __name__ == "__main__":
    asyncio.run(main())
