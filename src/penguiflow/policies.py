"""Routing policies: let configuration override where a router sends a message.

A router (`predicate_router`, `union_router`) proposes successors; a policy sees a
`RoutingRequest` and returns the final decision: successor nodes or node names,
or `None` to drop the message.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self, TypeAlias, cast, runtime_checkable

from .core import Context
from .errors import NotFoundError
from .node import Node

__all__ = [
    "DictRoutingPolicy",
    "PolicyCallable",
    "PolicyLike",
    "RoutingDecisionType",
    "RoutingPolicy",
    "RoutingRequest",
    "evaluate_policy",
]

RoutingDecisionType: TypeAlias = Node | str | Sequence[Node | str] | None
"""A routing decision: a node, a node name, several of them, or `None` (drop)."""


@dataclass(slots=True)
class RoutingRequest:
    """What a policy sees: the message, the router and the successors it proposed."""

    message: Any
    context: Context
    node: Node
    proposed: tuple[Node, ...]
    trace_id: str | None

    @property
    def node_name(self) -> str:
        """The router's name (its `node_id` if it has no name)."""
        return self.node.name or self.node.node_id

    @property
    def proposed_names(self) -> tuple[str, ...]:
        """Names of the proposed successors, in proposal order."""
        return tuple(node.name or node.node_id for node in self.proposed)


@runtime_checkable
class RoutingPolicy(Protocol):
    """An object whose `select` turns a `RoutingRequest` into a decision (sync or async)."""

    def select(
        self, request: RoutingRequest
    ) -> RoutingDecisionType | Awaitable[RoutingDecisionType]:
        """Return the successors to use (nodes or names), or `None` to drop the message."""
        ...


PolicyCallable: TypeAlias = Callable[
    [RoutingRequest], RoutingDecisionType | Awaitable[RoutingDecisionType]
]
"""A plain (sync or async) function used as a policy."""

PolicyLike: TypeAlias = RoutingPolicy | PolicyCallable
"""Anything a router accepts as `policy=`."""

KeyFn: TypeAlias = Callable[[RoutingRequest], str | None]


async def evaluate_policy(policy: PolicyLike, request: RoutingRequest) -> RoutingDecisionType:
    """Ask `policy` for a decision: `policy.select(request)` if it has `select`, else
    `policy(request)`; an awaitable result is awaited."""
    if hasattr(policy, "select"):
        result = cast(RoutingPolicy, policy).select(request)
    else:
        result = policy(request)
    if inspect.isawaitable(result):
        return await result
    return result


def _by_trace_id(request: RoutingRequest) -> str | None:
    return request.trace_id


def _mapping_copy(mapping: Any, what: str) -> dict[str, RoutingDecisionType]:
    if not isinstance(mapping, Mapping):
        raise TypeError(
            f"{what} must be a mapping of key -> decision, got {type(mapping).__name__}"
        )
    return dict(mapping)


class DictRoutingPolicy:
    """Look the decision up in a mapping by a key taken from the request.

    The key defaults to the request's trace id; pass `key_getter` to key by tenant,
    topic, etc. Unknown keys and a `None` key give `default`. The mapping can be
    swapped at runtime with `update_mapping`; changes apply to the next message.
    Raises `TypeError` if `mapping` is not a mapping.
    """

    __slots__ = ("_default", "_key_getter", "_mapping")

    def __init__(
        self,
        mapping: Mapping[str, RoutingDecisionType],
        *,
        default: RoutingDecisionType = None,
        key_getter: KeyFn | None = None,
    ) -> None:
        self._mapping = _mapping_copy(mapping, "mapping")
        self._default = default
        self._key_getter: KeyFn = key_getter or _by_trace_id

    def select(self, request: RoutingRequest) -> RoutingDecisionType:
        """The mapped decision for the request's key, or the default."""
        key = self._key_getter(request)
        if key is None:
            return self._default
        return self._mapping.get(key, self._default)

    def update_mapping(self, mapping: Mapping[str, RoutingDecisionType]) -> None:
        """Replace the mapping (a copy is kept)."""
        self._mapping = _mapping_copy(mapping, "mapping")

    def set_default(self, decision: RoutingDecisionType) -> None:
        """Replace the decision used for unknown or missing keys."""
        self._default = decision

    @classmethod
    def from_json(cls, payload: str, **kwargs: Any) -> Self:
        """Build from a JSON object; raises `TypeError` if it is not an object."""
        data = json.loads(payload)
        if not isinstance(data, Mapping):
            raise TypeError("JSON payload must decode to a mapping")
        return cls(data, **kwargs)

    @classmethod
    def from_json_file(cls, path: str, **kwargs: Any) -> Self:
        """Build from a UTF-8 JSON file (see `from_json`)."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"), **kwargs)

    @classmethod
    def from_env(
        cls,
        env_var: str,
        *,
        loader: Callable[[str], Mapping[str, RoutingDecisionType]] | None = None,
        default: RoutingDecisionType = None,
        key_getter: KeyFn | None = None,
    ) -> Self:
        """Build from an environment variable parsed by `loader` (default: JSON).

        Raises `KeyError` if the variable is unset and `TypeError` if the parsed
        value is not a mapping.
        """
        raw = os.getenv(env_var)
        if raw is None:
            raise NotFoundError(f"Environment variable '{env_var}' not set")
        data: Any = loader(raw) if loader is not None else json.loads(raw)
        if not isinstance(data, Mapping):
            raise TypeError("Policy loader must return a mapping")
        return cls(data, default=default, key_getter=key_getter)

    def __repr__(self) -> str:
        return f"DictRoutingPolicy(mapping={self._mapping!r}, default={self._default!r})"
