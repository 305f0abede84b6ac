"""The public surface, pinned: every public module's `__all__` lists what it defines.

A module is public when no part of its dotted path starts with `_`. It must have an
`__all__`; every name there must exist and none may start with `_`; and every public
class, function or UPPER_CASE constant the module defines must be listed, except the
few names below that the specified API leaves out of a fixed `__all__`.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from types import ModuleType
from typing import TypeVar

import pytest

import penguiflow
import penguiflow_a2a

# `__all__` lists the specified API fixes (module -> names, in any order).
SPECIFIED = {
    "penguiflow.types": {
        "Headers",
        "Message",
        "StreamChunk",
        "PlanStep",
        "Thought",
        "WM",
        "FinalAnswer",
    },
    "penguiflow.node": {"Node", "NodePolicy"},
    "penguiflow.registry": {"ModelRegistry"},
    "penguiflow.errors": {"FlowError", "FlowErrorCode"},
    "penguiflow.metrics": {"FlowEvent"},
    "penguiflow.middlewares": {"Middleware", "FlowEvent", "log_flow_events", "LatencyCallback"},
    "penguiflow.debug": {"format_flow_event"},
    "penguiflow.core": {
        "Context",
        "Floe",
        "PenguiFlow",
        "CycleError",
        "call_playbook",
        "create",
        "DEFAULT_QUEUE_MAXSIZE",
    },
    "penguiflow.patterns": {"map_concurrent", "join_k", "predicate_router", "union_router"},
    "penguiflow.policies": {
        "DictRoutingPolicy",
        "PolicyCallable",
        "PolicyLike",
        "RoutingDecisionType",
        "RoutingPolicy",
        "RoutingRequest",
        "evaluate_policy",
    },
    "penguiflow.streaming": {
        "format_sse_event",
        "chunk_to_ws_json",
        "stream_flow",
        "emit_stream_events",
    },
    "penguiflow.testkit": {
        "run_one",
        "assert_node_sequence",
        "get_recorded_events",
        "simulate_error",
        "assert_preserves_message_envelope",
    },
    "penguiflow.viz": {"flow_to_mermaid", "flow_to_dot"},
    "penguiflow.catalog": {"NodeSpec", "SideEffect", "build_catalog", "tool"},
}

# Public names a module defines that its specified `__all__` leaves out, and why.
UNLISTED = {
    # The spec names this helper of ModelRegistry but leaves it out of __all__.
    "penguiflow.registry": {"RegistryEntry"},
    # What `Node.models()` returns (the spec fixes penguiflow.node's __all__).
    "penguiflow.node": {"NodeModels"},
    # The type of `emit_stream_events(ctx=...)`: a Context or a PenguiFlow.
    "penguiflow.streaming": {"ChunkEmitter"},
    # The defaults of A2AServerAdapter(result_timeout_s=..., resubscribe_grace_s=...),
    # the tenant of a plain A2A client on the JSON-RPC route, and the meta key of a
    # follow-up's resume token.
    "penguiflow_a2a.server": {
        "DEFAULT_RESULT_TIMEOUT_S",
        "DEFAULT_RESUBSCRIBE_GRACE_S",
        "DEFAULT_TENANT",
        "RESUME_TOKEN_META",
    },
    # The engine's fast way to build a FlowEvent equal to `FlowEvent(...)`.
    "penguiflow.metrics": {"build_event"},
    # Typed errors that subclass the builtins the spec names; errors.__all__ is fixed.
    "penguiflow.errors": {
        "PenguiflowError",
        "NodeSignatureError",
        "UnknownTargetError",
        "RegistryCoverageError",
        "FlowLifecycleError",
        "FlowStoppedError",
        "FlowTimeoutError",
        "ContextError",
        "InvalidArgumentError",
        "NotFoundError",
        "MissingExtraError",
        "FlowAssertionError",
        "StateStoreError",
        "InvalidDataError",
        # How a failure's text is read when the exception's own __str__/__repr__ raise.
        "exception_text",
        "exception_repr",
    },
}


def public_modules() -> list[str]:
    names = []
    for package in (penguiflow, penguiflow_a2a):
        names.append(package.__name__)
        prefix = package.__name__ + "."
        for info in pkgutil.walk_packages(package.__path__, prefix):
            parts = info.name.split(".")
            if any(part.startswith("_") for part in parts):
                continue
            names.append(info.name)
    return sorted(names)


def defined_names(module: ModuleType) -> set[str]:
    """Public classes and functions defined in the module, and its UPPER_CASE constants."""
    names = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == module.__name__
    }
    source = inspect.getsource(module)
    for statement in ast.parse(source).body:
        targets: list[ast.expr] = []
        if isinstance(statement, ast.Assign):
            targets = list(statement.targets)
        elif isinstance(statement, ast.AnnAssign):
            targets = [statement.target]
        for target in targets:
            if (
                isinstance(target, ast.Name)
                and target.id.isupper()
                and not target.id.startswith("_")
                and not isinstance(getattr(module, target.id, None), TypeVar)
            ):
                names.add(target.id)
    return names


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


MODULES = public_modules()


def test_the_walk_finds_the_public_modules() -> None:
    assert {"penguiflow.core", "penguiflow.observation", "penguiflow_a2a.server"} <= set(MODULES)
    assert not [name for name in MODULES if "._" in name]


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    problems = {
        "private names listed": sorted(n for n in exported if is_private(n)),
        "listed but missing": sorted(n for n in exported if not hasattr(module, n)),
        "listed twice": sorted({n for n in exported if list(exported).count(n) > 1}),
        "defined but not listed": sorted(
            defined_names(module) - set(exported) - UNLISTED.get(name, set())
        ),
    }
    assert problems == {key: [] for key in problems}, name


@pytest.mark.parametrize("name", sorted(SPECIFIED))
def test_specified_modules_keep_their_specified_all(name: str) -> None:
    module = importlib.import_module(name)
    assert set(module.__all__) == SPECIFIED[name]
