"""A `PenguiFlow` served over MCP: one tool, typed by the entry node's input model;
the flow's node events and stream chunks become progress messages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._runtime.hooks import RookeryDelivery
from .._runtime.lifecycle import FlowState
from ..core import OPEN_SEA, PenguiFlow
from ..errors import FlowTimeoutError, InvalidArgumentError
from ..metrics import FlowEvent
from ..node import Node
from ..types import Headers, Message, StreamChunk
from ._serve_app import (
    STREAM_PREFIX,
    Progress,
    as_text,
    failed,
    invalid_arguments,
    is_tool_name,
    jsonable,
    result,
    timed_out,
)

FALLBACK_TOOL = "run"
"""A served flow's tool name when its entry node's name is not a valid tool name."""

# How a node's events read as progress (`{node}` is its name, `{attempt}` the attempt).
_MESSAGES = {
    "node_start": "{node}: started",
    "node_success": "{node}: done",
    "node_retry": "{node}: retrying (attempt {attempt})",
    "node_error": "{node}: error",
    "node_timeout": "{node}: timed out",
    "node_failed": "{node}: failed",
}


class PayloadArguments(BaseModel):
    """The arguments of a flow whose entry node names no input model."""

    model_config = ConfigDict(extra="forbid")

    payload: Any = Field(description="The payload sent to the flow's entry node.")


def progress_message(event: FlowEvent) -> str | None:
    """The progress message for a flow event, or `None` for events not shown."""
    template = _MESSAGES.get(event.event_type)
    if template is None:
        return None
    return template.format(node=event.node_name, attempt=event.attempt)


class FlowEntry:
    """Serves one flow: each call is one `flow.call(...)` on the validated input."""

    def __init__(
        self,
        flow: PenguiFlow,
        *,
        tool: str | None,
        description: str | None,
        timeout_s: float | None,
        tenant: str,
        registry: Any | None,
    ) -> None:
        self.flow = flow
        self.registry = registry if registry is not None else flow.registry
        node = _entry_node(flow)
        models = node.models(self.registry)
        # Typed by hints: the node receives the payload, validated by its model.
        # Otherwise (no model, or registry models that validate the whole message)
        # the client sends any payload under `payload`.
        self.model: type[BaseModel] = (
            models.in_model
            if models is not None and models.payload_typed and models.in_model is not None
            else PayloadArguments
        )
        self.typed = self.model is not PayloadArguments
        name = node.name or ""
        self.tool = tool or (name if is_tool_name(name) else FALLBACK_TOOL)
        summary = (node.func.__doc__ or "").strip().splitlines()
        self.description = description or (
            summary[0] if summary else f"Run the flow from its entry node {name!r}."
        )
        self.timeout_s = timeout_s
        self.tenant = tenant

    def tools(self) -> list[types.Tool]:
        schema = self.model.model_json_schema()
        if not self.typed:
            schema.pop("title", None)
        return [types.Tool(name=self.tool, description=self.description, input_schema=schema)]

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """The flow runs while the server does (unless its owner runs it)."""
        flow = self.flow
        if flow.state is FlowState.RUNNING:  # started by its owner, who stops it
            yield
            return
        flow.run(registry=self.registry)
        try:
            yield
        finally:
            await flow.stop()

    async def call(
        self, tool: str, arguments: Mapping[str, Any], progress: Progress
    ) -> types.CallToolResult:
        try:
            validated = self.model.model_validate(arguments)
        except ValidationError as exc:
            return invalid_arguments(tool, exc)
        payload = validated.payload if isinstance(validated, PayloadArguments) else validated
        # The message is built here, not by `call()`, so its trace id is known and
        # only this trace's events become this call's progress.
        message = Message(payload=payload, headers=Headers(tenant=self.tenant))
        trace_id = message.trace_id

        def on_event(event: FlowEvent) -> None:
            if event.trace_id == trace_id:
                text = progress_message(event)
                if text is not None:
                    progress.report(text)

        def on_rookery(delivery: RookeryDelivery) -> None:
            item = delivery.item
            chunk = item.payload if isinstance(item, Message) else item
            if delivery.trace_id == trace_id and isinstance(chunk, StreamChunk) and chunk.text:
                progress.report(f"{STREAM_PREFIX}{chunk.text}")

        hooks = self.flow.hooks
        hooks.event.append(on_event)
        hooks.rookery.append(on_rookery)
        try:
            outcome = await self.flow.call(message, timeout_s=self.timeout_s)
        except FlowTimeoutError:
            return timed_out(self.timeout_s)
        except Exception as exc:
            return failed(f"the flow ({tool})", exc)
        finally:
            hooks.event.remove(on_event)
            hooks.rookery.remove(on_rookery)
        if isinstance(outcome, Message):
            outcome = outcome.payload
        return result(as_text(outcome), {"result": jsonable(outcome)})


def _entry_node(flow: PenguiFlow) -> Node:
    entries = [
        edge.target
        for edge in flow.edges
        if edge.source is OPEN_SEA and isinstance(edge.target, Node)
    ]
    if len(entries) != 1:
        names = [n.name for n in entries]
        raise InvalidArgumentError(
            f"a flow served over MCP needs one entry node (one node without parents), "
            f"this one has {len(entries)}: {names}"
        )
    return entries[0]
