"""Nodes: typed async functions with a reliability policy."""

from __future__ import annotations

import inspect
import logging
import types
import typing
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel, TypeAdapter

from .errors import InvalidArgumentError, NodeSignatureError
from .types import Message

if TYPE_CHECKING:
    from .registry import ModelRegistry

logger = logging.getLogger("penguiflow.core")

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


class NodeModels(NamedTuple):
    """A node's input and output models with their adapters (`Node.models()`).

    Either model may be `None` (that side is not validated). `payload_typed` is true
    for type-hint models whose input model is not a `Message`: a `Message` reaching
    the node is then validated and passed on by its payload, and the result travels
    on in a copy of that message (same trace id, headers and meta). Models from a
    `ModelRegistry` validate what arrives as it is, as specified.
    """

    in_model: type[BaseModel] | None
    out_model: type[BaseModel] | None
    in_adapter: TypeAdapter[Any] | None
    out_adapter: TypeAdapter[Any] | None
    payload_typed: bool

    @classmethod
    def of(cls, in_model: type[BaseModel] | None, out_model: type[BaseModel] | None) -> NodeModels:
        """Models with adapters built for them."""
        return cls(
            in_model,
            out_model,
            TypeAdapter(in_model) if in_model is not None else None,
            TypeAdapter(out_model) if out_model is not None else None,
            in_model is not None and not issubclass(in_model, Message),
        )


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation names (`M` or `M | None`), else None.

    `Message` itself names the envelope, not a payload model: validating a `Message`
    against it checks nothing, so it registers no model.
    """
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel) and annotation is not Message:
            return annotation
        return None
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _model_of(members[0])
    return None


def _hinted_models(func: Callable[..., Any]) -> NodeModels | None:
    """The models a function's type hints name: its first parameter and its return.

    None when neither names a pydantic model, or when the hints cannot be resolved
    (a name only defined inside another function, say): the node then behaves as one
    without hints.
    """
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:  # any error of the user's annotations: no hint models
        logger.debug(
            "node_hints_unresolved",
            extra={"event": "node_hints_unresolved", "func": repr(func), "exception": repr(exc)},
        )
        return None
    params = list(inspect.signature(func).parameters)
    in_model = _model_of(hints.get(params[0])) if params else None
    out_model = _model_of(hints.get("return"))
    if in_model is None and out_model is None:
        return None
    return NodeModels.of(in_model, out_model)


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
    # The models of the function's type hints, resolved on first use (see `models`).
    _hinted: NodeModels | bool | None = field(init=False, default=False, repr=False, compare=False)

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

    def hinted_models(self) -> NodeModels | None:
        """The models named by the function's type hints (first parameter, return), or
        None; resolved once, on first use (when the flow runs)."""
        hinted = self._hinted
        if hinted is False:
            hinted = self._hinted = _hinted_models(self.func)
        return hinted  # type: ignore[return-value]

    def models(self, registry: ModelRegistry | Any | None = None) -> NodeModels | None:
        """The models this node is validated with.

        With a registry, its entry for the node's name (None when it has none: a
        registry must cover every validating node, as specified). Without one, the
        models named by the function's type hints, or None (no validation).
        """
        if registry is None:
            return self.hinted_models()
        try:
            in_adapter, out_adapter = registry.adapters(self.name or self.func.__name__)
        except KeyError:
            return None
        # As specified, the registry's models validate the message as it comes,
        # envelope included (only hint models unwrap a Message).
        in_model = out_model = None
        model_lookup = getattr(registry, "models", None)
        if model_lookup is not None:
            in_model, out_model = model_lookup(self.name or self.func.__name__)
        return NodeModels(in_model, out_model, in_adapter, out_adapter, False)

    async def invoke(self, message: Any, ctx: Any, *, registry: ModelRegistry | Any | None) -> Any:
        """Validate `message`, call the function and validate its result per the policy.

        The models come from `registry` (by node name) or else from the function's
        type hints; with neither, or with `validate="none"`, the function is called
        directly. A node whose input model is a payload model (not a `Message`) given
        a `Message` is called with the validated payload, and its result is sent on
        in a copy of the message (see `NodeModels`).
        """
        mode = self.policy.validate
        models = None if mode == "none" else self.models(registry)
        if models is None and registry is not None and mode != "none":
            registry.adapters(self.name or self.func.__name__)  # the spec'd KeyError
        return await self.invoke_with(models, message, ctx)

    async def invoke_with(self, models: NodeModels | None, message: Any, ctx: Any) -> Any:
        """`invoke` with the models already looked up (`models(registry)`, or None for
        no validation): what a node worker calls for every message."""
        if models is None:
            return await self.func(message, ctx)
        mode = self.policy.validate
        envelope = message if models.payload_typed and isinstance(message, Message) else None
        value = envelope.payload if envelope is not None else message
        if mode != "out" and models.in_adapter is not None:
            value = models.in_adapter.validate_python(value)
        result = await self.func(value, ctx)
        if result is None:
            return None
        if envelope is None:
            if mode == "in" or models.out_adapter is None:
                return result
            return models.out_adapter.validate_python(result)
        base = result if isinstance(result, Message) else envelope
        payload = result.payload if isinstance(result, Message) else result
        if mode != "in" and models.out_adapter is not None:
            payload = models.out_adapter.validate_python(payload)
        return base.model_copy(update={"payload": payload})
