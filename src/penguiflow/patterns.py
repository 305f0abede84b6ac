"""Ready-made nodes and helpers: bounded fan-out, routers and a per-trace join."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter

from .core import Context
from .errors import InvalidArgumentError, UnknownTargetError
from .node import Node, NodePolicy
from .policies import PolicyLike, RoutingDecisionType, RoutingRequest, evaluate_policy
from .types import Message

__all__ = ["map_concurrent", "join_k", "predicate_router", "union_router"]

PayloadT = TypeVar("PayloadT")
ResultT = TypeVar("ResultT")

_TARGETS_TYPE_ERROR = "Targets must be Node or str"


async def map_concurrent(
    items: Iterable[PayloadT],
    worker: Callable[[PayloadT], Awaitable[ResultT]],
    *,
    max_concurrency: int = 8,
) -> list[ResultT]:
    """Run `worker` on every item, at most `max(1, max_concurrency)` at once.

    Results come back in input order. The first exception propagates (like
    `asyncio.gather`: workers already running are not cancelled).
    """
    materialized = list(items)
    if not materialized:
        return []
    semaphore = asyncio.Semaphore(max(1, max_concurrency))

    async def run(item: PayloadT) -> ResultT:
        async with semaphore:
            return await worker(item)

    return list(await asyncio.gather(*(run(item) for item in materialized)))


def _router_name(ctx: Context) -> str:
    owner = getattr(ctx, "owner", None)
    if owner is None:
        return "router"
    return str(getattr(owner, "name", owner))


def _successor_peers(ctx: Context) -> list[Node]:
    """The router's node successors (endpoints such as Rookery are never named).

    Code written for the reference implementation calls `_normalize_targets` with a
    stand-in context that has only `_outgoing` (a mapping keyed by successor nodes),
    so that is read when there is no public `outgoing`.
    """
    outgoing = getattr(ctx, "outgoing", None)
    if outgoing is None:
        outgoing = getattr(ctx, "_outgoing", None)
    if outgoing is None:
        raise TypeError(
            f"{type(ctx).__name__} is not a penguiflow Context: it has no outgoing peers"
        )
    return [peer for peer in outgoing if isinstance(peer, Node)]


def _normalize_targets(ctx: Context, decision: RoutingDecisionType) -> list[Node]:
    """Turn a decision (node, name, or a sequence of them) into successor nodes.

    Names are looked up among the router's node successors (first match wins);
    nodes are kept as given and checked later by `ctx.emit`.
    """
    if decision is None:
        return []
    items: Iterable[Any]
    if isinstance(decision, Node | str):
        items = (decision,)
    else:
        try:
            items = iter(decision)
        except TypeError as exc:
            raise TypeError(_TARGETS_TYPE_ERROR) from exc
    successors: list[Node] | None = None
    selected: list[Node] = []
    for target in items:
        if isinstance(target, Node):
            selected.append(target)
        elif isinstance(target, str):
            if successors is None:
                successors = _successor_peers(ctx)
            match = next((node for node in successors if node.name == target), None)
            if match is None:
                raise UnknownTargetError(
                    f"No successor named '{target}'", target=target, owner=_router_name(ctx)
                )
            selected.append(match)
        else:
            raise TypeError(_TARGETS_TYPE_ERROR)
    return selected


async def _apply_policy(
    policy: PolicyLike,
    *,
    message: Any,
    ctx: Context,
    router: Node,
    proposed: list[Node],
) -> list[Node]:
    request = RoutingRequest(
        message=message,
        context=ctx,
        node=router,
        proposed=tuple(proposed),
        trace_id=getattr(message, "trace_id", None),
    )
    decision = await evaluate_policy(policy, request)
    return _normalize_targets(ctx, decision)


def _check_name(name: object, factory: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{factory}() name must be a str, got {type(name).__name__}")
    if not name:
        raise InvalidArgumentError(f"{factory}() name must not be empty")


def predicate_router(
    name: str,
    predicate: Callable[[Any], Sequence[Node | str] | Node | str | None],
    *,
    policy: PolicyLike | None = None,
) -> Node:
    """A node that forwards each message, unchanged, to the successors `predicate` picks.

    `predicate(message)` is synchronous and returns successor nodes or names (one or
    several), or `None`/empty to drop the message. An optional `policy` may
    override the choice (see `penguiflow.policies`). Unknown names raise `KeyError`
    and other target types `TypeError` inside the node (normal node failures).
    """
    _check_name(name, "predicate_router")
    if not callable(predicate):
        raise TypeError(f"predicate must be callable, got {type(predicate).__name__}")

    async def route(message: Any, ctx: Context) -> None:
        targets = predicate(message)
        if inspect.isawaitable(targets):
            if inspect.iscoroutine(targets):
                targets.close()
            raise TypeError(f"predicate of router '{name}' must be synchronous")
        selected = _normalize_targets(ctx, targets)
        if not selected:
            return None
        await _dispatch(policy, message, ctx, router, selected)
        return None

    router = Node(route, name=name, policy=NodePolicy(validate="none"))
    return router


async def _dispatch(
    policy: PolicyLike | None, message: Any, ctx: Context, router: Node, selected: list[Node]
) -> None:
    """Let the policy (if any) narrow `selected`, then emit `message` to what is left."""
    if policy is not None:
        selected = await _apply_policy(
            policy, message=message, ctx=ctx, router=router, proposed=selected
        )
        if not selected:
            return
    await ctx.emit(message, to=selected)


def union_router(
    name: str, union_model: type[BaseModel], *, policy: PolicyLike | None = None
) -> Node:
    """A node that validates each message against `union_model` and routes it by kind.

    The successor is the one named by the validated object's `kind` attribute, or
    by its class name when it has none; the *validated* object is forwarded.
    `union_model` may be any type Pydantic accepts (e.g. an annotated discriminated
    union). Invalid input raises `pydantic.ValidationError` and a kind with no
    matching successor raises `KeyError` inside the node.
    """
    _check_name(name, "union_router")
    adapter: TypeAdapter[Any] = TypeAdapter(union_model)

    async def route(message: Any, ctx: Context) -> None:
        validated = adapter.validate_python(message)
        target = getattr(validated, "kind", type(validated).__name__)
        selected = _normalize_targets(ctx, target)
        if not selected:
            raise UnknownTargetError(
                f"No successor matches '{target}'", target=str(target), owner=name
            )
        await _dispatch(policy, validated, ctx, router, selected)
        return None

    router = Node(route, name=name, policy=NodePolicy(validate="none"))
    return router


def join_k(name: str, k: int) -> Node:
    """A node that waits for `k` messages of the same trace and emits them as one.

    For `Message` inputs the result is a copy of the first message whose payload is
    the list of the `k` payloads in arrival order; other inputs are emitted as the
    list of the `k` items. Messages without a `trace_id` fail the node with
    `ValueError`. Raises `ValueError` if `k` is not positive, `TypeError` if it is
    not an int. Buckets live on the node object, so reusing it across flows shares
    them; incomplete buckets are kept until they fill.
    """
    _check_name(name, "join_k")
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k <= 0:
        raise InvalidArgumentError("k must be positive")
    buckets: dict[str, list[Any]] = {}

    async def join(message: Any, ctx: Context) -> Any:
        trace_id = getattr(message, "trace_id", None)
        if trace_id is None:
            # Raised inside the join node: the spec'd FlowError text names the builtin
            # class ("raised ValueError: ..."), so this one stays a plain ValueError.
            raise ValueError("join_k requires messages with trace_id")
        bucket = buckets.setdefault(trace_id, [])
        bucket.append(message)
        if len(bucket) < k:
            return None
        del buckets[trace_id]
        first = bucket[0]
        if isinstance(first, Message):
            payloads = [item.payload if isinstance(item, Message) else item for item in bucket]
            return first.model_copy(update={"payload": payloads})
        return bucket

    return Node(join, name=name, policy=NodePolicy(validate="none"))
