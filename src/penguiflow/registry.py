"""Per-node input/output models with cached pydantic adapters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter

from .errors import InvalidArgumentError, NotFoundError

__all__ = ["ModelRegistry"]


@dataclass(slots=True)
class RegistryEntry:
    in_adapter: TypeAdapter[Any]
    out_adapter: TypeAdapter[Any]
    in_model: type[BaseModel]
    out_model: type[BaseModel]


class ModelRegistry:
    """Maps node names to their input and output models.

    Adapters are built once at registration; the runtime validates through them
    according to each node's `NodePolicy.validate`.
    """

    def __init__(self) -> None:
        self._entries: dict[str, RegistryEntry] = {}

    def register(
        self, node_name: str, in_model: type[BaseModel], out_model: type[BaseModel]
    ) -> None:
        """Register models for `node_name`; a name can be registered only once."""
        if node_name in self._entries:
            raise InvalidArgumentError(f"Node '{node_name}' already registered")
        if not issubclass(in_model, BaseModel) or not issubclass(out_model, BaseModel):
            raise TypeError("Models must inherit from pydantic.BaseModel")
        self._entries[node_name] = RegistryEntry(
            in_adapter=TypeAdapter(in_model),
            out_adapter=TypeAdapter(out_model),
            in_model=in_model,
            out_model=out_model,
        )

    def _entry(self, node_name: str) -> RegistryEntry:
        try:
            return self._entries[node_name]
        except KeyError:
            raise NotFoundError(f"Node '{node_name}' not registered") from None

    def adapters(self, node_name: str) -> tuple[TypeAdapter[Any], TypeAdapter[Any]]:
        """Return `(in_adapter, out_adapter)`; `KeyError` for an unknown node."""
        entry = self._entry(node_name)
        return entry.in_adapter, entry.out_adapter

    def models(self, node_name: str) -> tuple[type[BaseModel], type[BaseModel]]:
        """Return `(in_model, out_model)`; `KeyError` for an unknown node."""
        entry = self._entry(node_name)
        return entry.in_model, entry.out_model
