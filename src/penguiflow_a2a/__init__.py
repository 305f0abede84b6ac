"""Serve a PenguiFlow as an A2A agent: the spec's HTTP routes plus standard A2A JSON-RPC.

Importing this package needs only pydantic; `create_a2a_app` imports FastAPI when
called (`pip install penguiflow[a2a-server]`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .auth import Principal as Principal  # beyond the spec: not in __all__
from .auth import bearer_token_auth as bearer_token_auth
from .models import A2AAgentCard, A2AMessagePayload, A2ASkill, A2ATaskCancelRequest
from .server import A2AServerAdapter, create_a2a_app

if TYPE_CHECKING:
    from .planning import planner_node as planner_node  # beyond the spec

__all__ = [
    "A2AAgentCard",
    "A2ASkill",
    "A2AMessagePayload",
    "A2ATaskCancelRequest",
    "A2AServerAdapter",
    "create_a2a_app",
]


def __getattr__(name: str) -> Any:
    if name == "planner_node":  # imports the planner: only when asked for
        from .planning import planner_node

        return planner_node
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
