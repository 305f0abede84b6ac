import pytest
from pydantic import BaseModel

from penguiflow import ModelRegistry


class A(BaseModel):
    a: int


class B(BaseModel):
    b: str


def test_register_and_lookup() -> None:
    registry = ModelRegistry()
    registry.register("node", A, B)
    assert registry.models("node") == (A, B)
    in_adapter, out_adapter = registry.adapters("node")
    assert in_adapter.validate_python({"a": "5"}) == A(a=5)
    assert out_adapter.validate_python(B(b="x")) == B(b="x")
    # Adapters are cached, not rebuilt per lookup.
    assert registry.adapters("node")[0] is in_adapter


def test_duplicate_registration_is_rejected_first() -> None:
    registry = ModelRegistry()
    registry.register("node", A, B)
    with pytest.raises(ValueError, match="Node 'node' already registered"):
        registry.register("node", int, B)  # type: ignore[arg-type]


def test_models_must_be_base_models() -> None:
    registry = ModelRegistry()
    with pytest.raises(TypeError, match=r"Models must inherit from pydantic\.BaseModel"):
        registry.register("node", dict, B)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        registry.register("other", "not a class", B)  # type: ignore[arg-type]


def test_unknown_node_errors() -> None:
    registry = ModelRegistry()
    with pytest.raises(KeyError) as info:
        registry.adapters("ghost")
    assert str(info.value) == "\"Node 'ghost' not registered\""
    with pytest.raises(KeyError):
        registry.models("ghost")
