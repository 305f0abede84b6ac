"""Pydantic models that stand for an MCP tool's JSON schemas.

A planner validates a tool's arguments with `args_model` and shows the LLM its
`model_json_schema()`. For an MCP tool both must be the server's own schema, so
these models have no fields of their own: they keep whatever they are given
(`extra="allow"`), report the server's schema, and check input against it with
`jsonschema` before pydantic builds them. A mismatch raises pydantic's
`ValidationError` (one line per schema error, at its path), which the planner
sends back to the LLM; the call never reaches the server.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from .._logfmt import LogLine

__all__: list[str] = []

logger = logging.getLogger("penguiflow.mcp")

# A schema error shown to the LLM keeps its first characters only: an enum of a
# thousand values must not flood the conversation.
_MESSAGE_CHARS = 300


class SchemaModel(BaseModel):
    """A model for one JSON schema (set by `schema_model`); its fields are the data's keys."""

    model_config = ConfigDict(extra="allow")

    json_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    validator: ClassVar[Any] = None

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The server's JSON schema (shared: do not mutate it)."""
        return cls.json_schema

    @model_validator(mode="before")
    @classmethod
    def _check_schema(cls, data: Any) -> Any:
        validator = cls.validator
        if validator is None:
            return data
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, [_line(e) for e in errors])
        return data

    def arguments(self) -> dict[str, Any]:
        """The data the model was built from, as a dict."""
        return dict(self.__pydantic_extra__ or {})


def _line(error: Any) -> InitErrorDetails:
    message = str(error.message)
    if len(message) > _MESSAGE_CHARS:
        message = message[:_MESSAGE_CHARS] + "…"
    return InitErrorDetails(
        type=PydanticCustomError("json_schema", "{message}", {"message": message}),
        loc=tuple(error.absolute_path),
        input=error.instance,
    )


def schema_model(
    name: str, schema: Mapping[str, Any] | None, *, doc: str, check: bool
) -> type[SchemaModel] | None:
    """A `SchemaModel` subclass for `schema`, or `None` if the schema is not valid.

    With `check`, input is validated against the schema; without, the model only
    reports it (for data checked elsewhere).

    A schema that is not valid JSON Schema is logged (WARNING `mcp_schema_invalid`)
    and gives `None`: the caller leaves that tool out rather than call it unchecked.
    """
    from jsonschema import SchemaError  # type: ignore[import-untyped]
    from jsonschema.validators import validator_for  # type: ignore[import-untyped]
    from referencing import Registry

    schema = copy.deepcopy(dict(schema or {"type": "object"}))
    validator_class = validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except SchemaError as exc:
        fields = {"model": name, "error": str(exc.message)[:300]}
        logger.warning(LogLine("mcp_schema_invalid"), fields, extra=fields)
        return None
    # An empty registry: `$ref`s resolve within the schema, never over the network.
    validator = validator_class(schema, registry=Registry()) if check else None
    model = type(
        name,
        (SchemaModel,),
        {"__doc__": doc, "__module__": __name__, "json_schema": schema, "validator": validator},
    )
    return model
