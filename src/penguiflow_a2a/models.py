"""The A2A adapter's request and card models (spec routes: camelCase bodies)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["A2ASkill", "A2AAgentCard", "A2AMessagePayload", "A2ATaskCancelRequest"]


class A2ASkill(BaseModel):
    """One skill the agent offers; extra fields are kept."""

    model_config = ConfigDict(extra="allow")

    name: str
    description: str
    mode: str = "both"
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)


class A2AAgentCard(BaseModel):
    """The agent's self-description (snake_case keys); extra fields are kept."""

    model_config = ConfigDict(extra="allow")

    name: str
    description: str
    version: str = "1.0.0"
    schema_version: str = "1.0"
    tags: list[str] = Field(default_factory=list)
    capabilities: list[str] = Field(default_factory=list)
    skills: list[A2ASkill] = Field(default_factory=list)
    contact_url: str | None = None
    documentation_url: str | None = None

    def to_payload(self) -> dict[str, Any]:
        """The card as a dict: declared fields in order, then extras; `None`s kept."""
        return self.model_dump()


class A2AMessagePayload(BaseModel):
    """Body of `/message/send` and `/message/stream`; alias or field name accepted."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    payload: Any
    headers: Mapping[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    trace_id: str | None = Field(default=None, alias="traceId")
    context_id: str | None = Field(default=None, alias="contextId")
    task_id: str | None = Field(default=None, alias="taskId")
    deadline_s: float | None = Field(default=None, alias="deadlineSeconds")


class A2ATaskCancelRequest(BaseModel):
    """Body of `/tasks/cancel`."""

    model_config = ConfigDict(populate_by_name=True)

    task_id: str = Field(alias="taskId")
