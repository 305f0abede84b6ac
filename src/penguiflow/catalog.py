"""The tool catalog: planner-visible descriptions of nodes and their models.

Decorate a node function with `tool(...)` to attach planner metadata, register the
node's models in a `ModelRegistry`, then call `build_catalog(nodes, registry)` to get
one `NodeSpec` per node.
"""

from __future__ import annotations

import inspect
import json
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from .errors import NotFoundError
from .node import Node
from .registry import ModelRegistry

__all__ = ["NodeSpec", "SideEffect", "build_catalog", "tool"]

SideEffect = Literal["pure", "read", "write", "external", "stateful"]
"""How a tool affects the world. Informational only: nothing validates or enforces it."""

_F = TypeVar("_F", bound=Callable[..., Any])

_TOOL_ATTR = "__penguiflow_tool__"

# JSON schemas cost ~0.5 ms each to generate, so each model's schema is computed once.
# Weak keys let models defined at run time (e.g. in tests) be garbage-collected.
_SCHEMAS: weakref.WeakKeyDictionary[type[BaseModel], dict[str, Any]] = weakref.WeakKeyDictionary()
_SCHEMA_JSON: weakref.WeakKeyDictionary[type[BaseModel], str] = weakref.WeakKeyDictionary()


def _json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model.model_json_schema()`, computed once per model class.

    The returned dict is shared by every caller and must not be mutated.
    """
    schema = _SCHEMAS.get(model)
    if schema is None:
        schema = _SCHEMAS[model] = model.model_json_schema()
    return schema


def _json_schema_text(model: type[BaseModel]) -> str:
    """The model's JSON schema as compact JSON (sorted keys, non-ASCII kept), cached."""
    text = _SCHEMA_JSON.get(model)
    if text is None:
        text = _SCHEMA_JSON[model] = json.dumps(
            _json_schema(model), ensure_ascii=False, sort_keys=True
        )
    return text


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One planner-visible tool: a node, its models and informational metadata.

    The planner calls `node.func` with a validated `args_model` instance and checks
    the result against `out_model`. `side_effects`, `tags`, `auth_scopes` and the
    hints are only shown to the LLM; nothing enforces them.
    """

    node: Node
    name: str
    desc: str
    args_model: type[BaseModel]
    out_model: type[BaseModel]
    side_effects: SideEffect = "pure"
    tags: Sequence[str] = field(default_factory=tuple)
    auth_scopes: Sequence[str] = field(default_factory=tuple)
    cost_hint: str | None = None
    latency_hint_ms: int | None = None
    safety_notes: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_tool_record(self) -> dict[str, Any]:
        """Return a new dict describing the tool for the planner prompt.

        `args_schema` and `out_schema` are the models' JSON schemas. They are computed
        once per model and shared between records, so treat them as read-only.
        """
        return {
            "name": self.name,
            "desc": self.desc,
            "side_effects": self.side_effects,
            "tags": list(self.tags),
            "auth_scopes": list(self.auth_scopes),
            "cost_hint": self.cost_hint,
            "latency_hint_ms": self.latency_hint_ms,
            "safety_notes": self.safety_notes,
            "args_schema": _json_schema(self.args_model),
            "out_schema": _json_schema(self.out_model),
            "extra": dict(self.extra),
        }


def _unique(values: Sequence[str] | None) -> tuple[str, ...]:
    if values is None:
        return ()
    return tuple(dict.fromkeys(values))


def tool(
    *,
    desc: str | None = None,
    side_effects: SideEffect = "pure",
    tags: Sequence[str] | None = None,
    auth_scopes: Sequence[str] | None = None,
    cost_hint: str | None = None,
    latency_hint_ms: int | None = None,
    safety_notes: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Callable[[_F], _F]:
    """Attach planner metadata to a node function; returns the function unchanged.

    `tags` and `auth_scopes` are de-duplicated (first occurrence wins, order kept).
    Without `desc`, the catalog uses the function's docstring, then its name. Values
    are not validated. The metadata is stored as the `__penguiflow_tool__` attribute.
    """
    metadata: dict[str, Any] = {
        "desc": desc,
        "side_effects": side_effects,
        "tags": _unique(tags),
        "auth_scopes": _unique(auth_scopes),
        "cost_hint": cost_hint,
        "latency_hint_ms": latency_hint_ms,
        "safety_notes": safety_notes,
        "extra": dict(extra) if extra else {},
    }

    def decorate(func: _F) -> _F:
        setattr(func, _TOOL_ATTR, metadata)
        return func

    return decorate


def _default_desc(func: Callable[..., Any]) -> str:
    doc = inspect.getdoc(func)
    return doc if doc else str(getattr(func, "__name__", repr(func)))


def _resolve_metadata(func: Callable[..., Any]) -> dict[str, Any]:
    """The catalog fields for `func`, from its `tool(...)` metadata or defaults."""
    stored = getattr(func, _TOOL_ATTR, None)
    if not stored:
        return {
            "desc": _default_desc(func),
            "side_effects": "pure",
            "tags": (),
            "auth_scopes": (),
            "cost_hint": None,
            "latency_hint_ms": None,
            "safety_notes": None,
            "extra": {},
        }
    if not isinstance(stored, Mapping):
        raise TypeError(
            f"{_TOOL_ATTR} on {getattr(func, '__name__', func)!r} must be a mapping "
            f"(set by penguiflow.catalog.tool), got {type(stored).__name__}"
        )
    return {
        "desc": stored.get("desc") or _default_desc(func),
        "side_effects": stored.get("side_effects", "pure"),
        "tags": tuple(stored.get("tags") or ()),
        "auth_scopes": tuple(stored.get("auth_scopes") or ()),
        "cost_hint": stored.get("cost_hint"),
        "latency_hint_ms": stored.get("latency_hint_ms"),
        "safety_notes": stored.get("safety_notes"),
        "extra": dict(stored.get("extra") or {}),
    }


def _tool_models(node: Node, registry: ModelRegistry | None) -> tuple[type[BaseModel], ...]:
    """`(args_model, out_model)` from the registry, or without one from the function's
    type hints."""
    name = node.name or node.func.__name__
    if registry is not None:
        return registry.models(name)  # KeyError("Node '<name>' not registered")
    hinted = node.hinted_models()
    if hinted is not None and hinted.in_model is not None and hinted.out_model is not None:
        return hinted.in_model, hinted.out_model
    raise NotFoundError(
        f"Node '{name}' has no registry and its type hints do not name both models: "
        "annotate its first parameter and its return with pydantic models, or pass a "
        "ModelRegistry"
    )


def build_catalog(
    nodes: Sequence[Node | Callable[..., Any]], registry: ModelRegistry | None = None
) -> list[NodeSpec]:
    """Describe `nodes`, in order, as `NodeSpec`s.

    Each tool's models come from `registry` (by node name). Without a registry they
    come from the function's type hints (`async def search(args: Query, ctx) -> Hits`),
    and an `async def` function (for example one decorated with `tool(...)`) may be
    given in place of a `Node` (it is wrapped in `Node(func)`). Raises
    `KeyError("Node '<name>' not registered")` for a node the registry lacks (a
    `NotFoundError`, a `KeyError` too, for one whose hints name no models), and
    `TypeError` for an item that is not a `Node`. Duplicate names are kept.
    """
    specs: list[NodeSpec] = []
    for item in nodes:
        node = _as_node(item, wrap=registry is None)
        func = node.func
        in_model, out_model = _tool_models(node, registry)
        specs.append(
            NodeSpec(
                node=node,
                name=node.name or func.__name__,
                args_model=in_model,
                out_model=out_model,
                **_resolve_metadata(func),
            )
        )
    return specs


def _as_node(item: Node | Callable[..., Any], *, wrap: bool) -> Node:
    if isinstance(item, Node):
        return item
    func = getattr(item, "func", None)
    if func is not None and callable(func) and hasattr(item, "name"):
        return item  # type: ignore[return-value]  # a Node-like object
    if wrap and inspect.iscoroutinefunction(item):
        return Node(item)
    raise TypeError(
        "build_catalog expects penguiflow Node objects or async def functions; got "
        f"{type(item).__name__} {getattr(item, '__name__', item)!r} "
        "(wrap tool functions in Node(func, name=...))"
    )
