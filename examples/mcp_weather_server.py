"""A small MCP server with one tool, `forecast`: what examples/mcp_tools.py starts.

Built with the official MCP SDK's server API; it speaks MCP on stdio, so any MCP
client can start it: `python examples/mcp_weather_server.py`.
"""

from __future__ import annotations

import asyncio

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

server = MCPServer("weather", log_level="ERROR")

FORECASTS = {"paris": (18, "sunny"), "oslo": (4, "snow"), "lisbon": (22, "clear skies")}


class Forecast(BaseModel):
    city: str
    celsius: int
    sky: str


@server.tool(description="Tomorrow's forecast for a city.")
def forecast(city: str) -> Forecast:
    known = FORECASTS.get(city.lower())
    if known is None:
        raise ToolError(f"no forecast for {city!r}; try one of {sorted(FORECASTS)}")
    celsius, sky = known
    return Forecast(city=city.title(), celsius=celsius, sky=sky)


if __name__ == "__main__":
    asyncio.run(server.run_stdio_async())
