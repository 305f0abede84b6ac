"""MCP (Model Context Protocol) support: needs the extra, `pip install 'penguiflow[mcp]'`.

Nothing here imports the `mcp` SDK: each public name is loaded from its module on
first access (see `_LAZY`), so `import penguiflow` never needs the extra.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "MCPConnectionError",
    "MCPContent",
    "MCPTimeoutError",
    "MCPToolError",
    "MCPToolset",
    "MCPToolsetError",
    "mcp_server",
    "serve_http",
    "serve_stdio",
]

# Public name -> the submodule (of this package) that defines it, loaded on first
# access. Add a name here and to `__all__` together.
_LAZY: dict[str, str] = {
    # -- client side: MCP tools in the planner's catalog (toolset.py) -------------------
    "MCPToolset": "toolset",
    "MCPContent": "_results",
    "MCPToolsetError": "errors",
    "MCPConnectionError": "errors",
    "MCPToolError": "errors",
    "MCPTimeoutError": "errors",
    # -- server side: serving agents over MCP (server.py) ------------------------------
    "mcp_server": "server",
    "serve_stdio": "server",
    "serve_http": "server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
