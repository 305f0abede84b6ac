"""`model_validate` and `model_dump(mode="json")`, without the wrappers when they add nothing.

A planner step validates and dumps several small models; pydantic's Python-level
wrappers around its validator and serializer cost about as much as the work itself.
These call the model's `__pydantic_validator__` / `__pydantic_serializer__` directly,
exactly as the wrappers do with their defaults, unless the model class overrides
`model_validate` or `model_dump` (then its own method runs, as it would anywhere else).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["dump_json", "validate", "validate_json"]

_M = TypeVar("_M", bound=BaseModel)

_BASE_VALIDATE = BaseModel.model_validate.__func__  # type: ignore[attr-defined]
_BASE_VALIDATE_JSON = BaseModel.model_validate_json.__func__  # type: ignore[attr-defined]
_BASE_DUMP = BaseModel.model_dump


def validate(model: type[_M], data: Any) -> _M:
    """`model.model_validate(data)`; pydantic's `ValidationError` when it does not fit."""
    if model.model_validate.__func__ is _BASE_VALIDATE:  # type: ignore[attr-defined]
        result: _M = model.__pydantic_validator__.validate_python(data)
        return result
    return model.model_validate(data)


def validate_json(model: type[_M], data: str | bytes | bytearray) -> _M:
    """`model.model_validate_json(data)`; pydantic's `ValidationError` when it does not fit."""
    if model.model_validate_json.__func__ is _BASE_VALIDATE_JSON:  # type: ignore[attr-defined]
        result: _M = model.__pydantic_validator__.validate_json(data)
        return result
    return model.model_validate_json(data)


def dump_json(instance: BaseModel) -> Any:
    """`instance.model_dump(mode="json")`: the model as JSON-compatible data."""
    cls = type(instance)
    if cls.model_dump is _BASE_DUMP:
        return cls.__pydantic_serializer__.to_python(instance, mode="json")
    return instance.model_dump(mode="json")
