from typing import Any

import pytest

from penguiflow import ModelRegistry, Node, NodePolicy
from penguiflow.errors import NodeSignatureError

from .conftest import make_message


async def echo(message: Any, ctx: Any) -> Any:
    return message


def test_policy_defaults_and_validation() -> None:
    policy = NodePolicy()
    assert (policy.validate, policy.timeout_s, policy.max_retries) == ("both", None, 0)
    assert (policy.backoff_base, policy.backoff_mult, policy.max_backoff) == (0.5, 2.0, None)
    assert NodePolicy("in", 1.0, 3) == NodePolicy(validate="in", timeout_s=1.0, max_retries=3)
    with pytest.raises(ValueError, match="validate must be one of 'both', 'in', 'out', 'none'"):
        NodePolicy(validate="sometimes")


def test_node_name_defaults_to_function_name() -> None:
    assert Node(echo).name == "echo"
    assert Node(echo, name="").name == "echo"
    assert Node(echo, name="custom").name == "custom"


def test_nodes_have_unique_identity() -> None:
    first, second = Node(echo), Node(echo)
    assert first != second
    assert len(first.node_id) == 32
    assert hash(first) == hash(first.node_id)
    assert repr(first) == f"Node(name='echo', node_id={first.node_id})"
    assert first.to(second) == (first, (second,))
    assert first.to() == (first, ())


def test_sync_functions_are_rejected() -> None:
    def sync(message: Any, ctx: Any) -> Any:
        return message

    with pytest.raises(TypeError, match="Node function must be declared with async def"):
        Node(sync)  # type: ignore[arg-type]


def test_wrong_arity_names_the_node() -> None:
    async def lonely(message: Any) -> Any:
        return message

    with pytest.raises(NodeSignatureError) as info:
        Node(lonely, name="lonely")
    assert str(info.value) == (
        "Node 'lonely' must accept exactly two parameters (message, ctx); got 1"
    )
    assert info.value.node_name == "lonely"
    assert isinstance(info.value, ValueError)


def test_context_must_be_positional() -> None:
    async def kw_ctx(message: Any, *, ctx: Any) -> Any:
        return message

    with pytest.raises(ValueError, match="Context parameter must be positional"):
        Node(kw_ctx)


async def test_invoke_validates_both_sides() -> None:
    from pydantic import BaseModel, ValidationError

    class In(BaseModel):
        x: int

    class Out(BaseModel):
        y: int

    async def double(message: In, ctx: Any) -> Any:
        return {"y": message.x * 2}

    node = Node(double)
    registry = ModelRegistry()
    registry.register("double", In, Out)
    result = await node.invoke({"x": "21"}, None, registry=registry)  # type: ignore[arg-type]
    assert result == Out(y=42)
    with pytest.raises(ValidationError):
        await node.invoke({"x": "nope"}, None, registry=registry)  # type: ignore[arg-type]
    # Without a registry nothing is validated.
    assert await node.invoke(In(x=1), None, registry=None) == {"y": 2}  # type: ignore[arg-type]


async def test_invoke_none_result_skips_output_validation() -> None:
    async def nothing(message: Any, ctx: Any) -> None:
        return None

    from pydantic import BaseModel

    class M(BaseModel):
        v: int

    registry = ModelRegistry()
    registry.register("nothing", M, M)
    assert await Node(nothing).invoke({"v": 1}, None, registry=registry) is None  # type: ignore[arg-type]


async def test_invoke_passes_message_envelope_through() -> None:
    message = make_message("hi")
    assert await Node(echo).invoke(message, None, registry=None) is message  # type: ignore[arg-type]
