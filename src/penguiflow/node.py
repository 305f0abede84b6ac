"""Nodes: typed async functions with a reliability policy."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError, NodeSignatureError

if TYPE_CHECKING:
    from .registry import ModelRegistry

__all__ = ["Node", "NodePolicy"]

_VALIDATE_MODES = ("both", "in", "out", "none")


@dataclass(slots=True)
class NodePolicy:
    """Validation mode, per-attempt timeout and retry/backoff settings of a node.

    `max_retries` counts additional attempts after the first. The delay before
    retry `n` (1-based) is `backoff_base * backoff_mult ** (n - 1)`, capped at
    `max_backoff` when set.
    """

    validate: str = "both"
    timeout_s: float | None = None
    max_retries: int = 0
    backoff_base: float = 0.5
    backoff_mult: float = 2.0
    max_backoff: float | None = None

    def __post_init__(self) -> None:
        if self.validate not in _VALIDATE_MODES:
            raise InvalidArgumentError("validate must be one of 'both', 'in', 'out', 'none'")


def _new_node_id() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class Node:
    """An async function `(message, ctx) -> result` placed in a flow.

    Raises `TypeError` if `func` is not an `async def` function and
    `NodeSignatureError` (a `ValueError`) if it does not take exactly two
    parameters with a positional second one.
    """

    func: Callable[..., Awaitable[Any]]
    name: str | None = None
    policy: NodePolicy = field(default_factory=NodePolicy)
    allow_cycle: bool = False
    node_id: str = field(init=False, default_factory=_new_node_id)

    def __post_init__(self) -> None:
        if not inspect.iscoroutinefunction(self.func):
            raise TypeError("Node function must be declared with async def")
        self.name = self.name or self.func.__name__
        params = list(inspect.signature(self.func).parameters.values())
        if len(params) != 2:
            raise NodeSignatureError(
                f"Node '{self.name}' must accept exactly two parameters "
                f"(message, ctx); got {len(params)}",
                node_name=self.name,
            )
        if params[1].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise NodeSignatureError("Context parameter must be positional", node_name=self.name)

    def __hash__(self) -> int:
        return hash(self.node_id)

    def __repr__(self) -> str:
        return f"Node(name={self.name!r}, node_id={self.node_id})"

    def to(self, *nodes: Node) -> tuple[Node, tuple[Node, ...]]:
        """Declare this node's successors; `node.to()` makes it an egress node."""
        return self, nodes

    async def invoke(self, message: Any, ctx: Any, *, registry: ModelRegistry | Any | None) -> Any:
        """Validate `message`, call the function and validate its result per the policy."""
        mode = self.policy.validate
        if registry is None or mode == "none":
            result = await self.func(message, ctx)
            return result
        in_adapter, out_adapter = registry.adapters(self.name or self.func.__name__)
        if mode != "out":
            message = in_adapter.validate_python(message)
        result = await self.func(message, ctx)
        if result is None or mode == "in":
            return result
        return out_adapter.validate_python(result)
