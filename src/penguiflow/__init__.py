"""penguiflow: async-first, typed orchestration for LLM agents and data pipelines.

Every public name loads on first access (PEP 562), so `import penguiflow` stays
fast and never imports an optional dependency; `from penguiflow import create`
loads the runtime it needs and nothing more.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import testkit
    from .bus import BusEnvelope, MessageBus
    from .catalog import NodeSpec, SideEffect, build_catalog, tool
    from .core import (
        DEFAULT_QUEUE_MAXSIZE,
        Context,
        CycleError,
        PenguiFlow,
        call_playbook,
        create,
    )
    from .debug import format_flow_event
    from .errors import FlowError, FlowErrorCode
    from .metrics import FlowEvent
    from .middlewares import LatencyCallback, Middleware, log_flow_events
    from .node import Node, NodePolicy
    from .patterns import join_k, map_concurrent, predicate_router, union_router
    from .planner import (
        PlannerAction,
        PlannerFinish,
        ReactPlanner,
        Trajectory,
        TrajectoryStep,
    )
    from .planner import (
        PlannerPause as PlannerPause,
    )
    from .policies import DictRoutingPolicy, RoutingPolicy, RoutingRequest
    from .registry import ModelRegistry
    from .remote import (
        RemoteCallRequest,
        RemoteCallResult,
        RemoteNode,
        RemoteStreamEvent,
        RemoteTransport,
    )
    from .state import RemoteBinding, StateStore, StoredEvent
    from .streaming import chunk_to_ws_json, emit_stream_events, format_sse_event, stream_flow
    from .types import WM, FinalAnswer, Headers, Message, PlanStep, StreamChunk, Thought
    from .viz import flow_to_dot, flow_to_mermaid

__version__ = "2.2.6"

__all__ = [
    "__version__",
    "Context",
    "CycleError",
    "PenguiFlow",
    "DEFAULT_QUEUE_MAXSIZE",
    "Node",
    "NodePolicy",
    "ModelRegistry",
    "NodeSpec",
    "SideEffect",
    "build_catalog",
    "tool",
    "Middleware",
    "log_flow_events",
    "LatencyCallback",
    "FlowEvent",
    "format_flow_event",
    "FlowError",
    "FlowErrorCode",
    "MessageBus",
    "BusEnvelope",
    "call_playbook",
    "Headers",
    "Message",
    "StreamChunk",
    "PlanStep",
    "Thought",
    "WM",
    "FinalAnswer",
    "map_concurrent",
    "join_k",
    "predicate_router",
    "union_router",
    "DictRoutingPolicy",
    "RoutingPolicy",
    "RoutingRequest",
    "format_sse_event",
    "chunk_to_ws_json",
    "stream_flow",
    "emit_stream_events",
    "flow_to_mermaid",
    "flow_to_dot",
    "create",
    "testkit",
    "StateStore",
    "StoredEvent",
    "RemoteBinding",
    "RemoteTransport",
    "RemoteCallRequest",
    "RemoteCallResult",
    "RemoteStreamEvent",
    "RemoteNode",
    "ReactPlanner",
    "PlannerAction",
    "PlannerFinish",
    "Trajectory",
    "TrajectoryStep",
]

# name -> module that defines it, imported on first attribute access (PEP 562), so
# `import penguiflow` costs almost nothing and loads no optional dependency.
_LAZY = {
    "Context": "core",
    "CycleError": "core",
    "PenguiFlow": "core",
    "DEFAULT_QUEUE_MAXSIZE": "core",
    "call_playbook": "core",
    "create": "core",
    "Node": "node",
    "NodePolicy": "node",
    "ModelRegistry": "registry",
    "NodeSpec": "catalog",
    "SideEffect": "catalog",
    "build_catalog": "catalog",
    "tool": "catalog",
    "Middleware": "middlewares",
    "log_flow_events": "middlewares",
    "LatencyCallback": "middlewares",
    "FlowEvent": "metrics",
    "format_flow_event": "debug",
    "FlowError": "errors",
    "FlowErrorCode": "errors",
    "MessageBus": "bus",
    "BusEnvelope": "bus",
    "Headers": "types",
    "Message": "types",
    "StreamChunk": "types",
    "PlanStep": "types",
    "Thought": "types",
    "WM": "types",
    "FinalAnswer": "types",
    "map_concurrent": "patterns",
    "join_k": "patterns",
    "predicate_router": "patterns",
    "union_router": "patterns",
    "DictRoutingPolicy": "policies",
    "RoutingPolicy": "policies",
    "RoutingRequest": "policies",
    "format_sse_event": "streaming",
    "chunk_to_ws_json": "streaming",
    "stream_flow": "streaming",
    "emit_stream_events": "streaming",
    "flow_to_mermaid": "viz",
    "flow_to_dot": "viz",
    "StateStore": "state",
    "StoredEvent": "state",
    "RemoteBinding": "state",
    "RemoteTransport": "remote",
    "RemoteCallRequest": "remote",
    "RemoteCallResult": "remote",
    "RemoteStreamEvent": "remote",
    "RemoteNode": "remote",
    "ReactPlanner": "planner",
    "PlannerPause": "planner",  # beyond the spec's __all__: the other result of run()
    "PlannerAction": "planner",
    "PlannerFinish": "planner",
    "Trajectory": "planner",
    "TrajectoryStep": "planner",
}


def __getattr__(name: str) -> Any:
    if name == "testkit":
        return importlib.import_module(".testkit", __name__)
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'penguiflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
