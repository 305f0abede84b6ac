"""A `ReactPlanner` served over MCP: the tools `ask` and `resume`, and the planner
events that become progress messages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidArgumentError
from ..planner import PlannerEvent, PlannerFinish, PlannerPause, ReactPlanner
from ..planner.models import PlannerEventCallback
from ._serve_app import (
    STREAM_PREFIX,
    Progress,
    as_text,
    failed,
    invalid_arguments,
    jsonable,
    result,
    timed_out,
)

RESUME_TOOL = "resume"

DISCARDED = "answer discarded: the agent goes on"
"""The progress message when the answer streamed so far was not taken (the planner
rejected the finish): a later stream carries the answer."""


class AskArguments(BaseModel):
    """The arguments of a served planner's entry tool."""

    model_config = ConfigDict(extra="forbid", title="ask")

    query: str = Field(description="What to ask the agent.")
    context: dict[str, Any] = Field(
        default_factory=dict,
        description="Facts for the agent's tools (the run's context_meta); optional.",
    )


class ResumeArguments(BaseModel):
    """The arguments of the `resume` tool."""

    model_config = ConfigDict(extra="forbid", title="resume")

    token: str = Field(description="The resume_token of the paused run.")
    user_input: str | None = Field(
        default=None, description="What the user answered to the pause; optional."
    )


def progress_message(event: PlannerEvent) -> str | None:
    """The progress message for a planner event, or `None` for events not shown.

    Steps are counted from 1. A streamed piece of the final answer (an
    `llm_stream_chunk` event) is `"answer: "` followed by the piece; the pieces
    joined are the answer, unless `DISCARDED` follows them.
    """
    kind = event.event_type
    step = event.trajectory_step + 1
    extra = event.extra
    if kind == "step_start":
        return f"step {step}: planning"
    if kind == "step_complete":
        return f"step {step}: called {event.node_name}"
    if kind == "llm_stream_chunk":
        if extra.get("discarded"):
            return DISCARDED
        text = extra.get("text")
        return f"{STREAM_PREFIX}{text}" if isinstance(text, str) and text else None
    if kind == "finish_rejected":
        return f"step {step}: finish rejected ({extra.get('check')})"
    if kind == "pause":
        return f"paused: {extra.get('reason')}"
    if kind == "resume":
        return f"resumed at step {step}"
    if kind == "finish":
        return f"finished: {extra.get('reason')}"
    return None


class PlannerEntry:
    """Serves one planner; its runs take turns (a planner is not safe for concurrent
    runs), so concurrent calls wait for each other."""

    def __init__(
        self,
        planner: ReactPlanner,
        *,
        tool: str,
        description: str | None,
        timeout_s: float | None,
    ) -> None:
        self.planner = planner
        self.tool = tool
        if self.tool == RESUME_TOOL:
            raise InvalidArgumentError(
                f"tool={RESUME_TOOL!r} is taken by the tool that resumes a paused run; "
                "name the entry tool otherwise"
            )
        self.description = description or (
            "Ask the agent: it plans with its tools until it can answer `query`. "
            f"A paused run answers a resume_token for the {RESUME_TOOL!r} tool."
        )
        self.timeout_s = timeout_s
        self._turn = asyncio.Lock()

    def tools(self) -> list[types.Tool]:
        return [
            types.Tool(
                name=self.tool,
                description=self.description,
                input_schema=_schema(AskArguments),
            ),
            types.Tool(
                name=RESUME_TOOL,
                description=f"Continue a run of {self.tool!r} that paused.",
                input_schema=_schema(ResumeArguments),
            ),
        ]

    def lifespan(self) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def call(
        self, tool: str, arguments: Mapping[str, Any], progress: Progress
    ) -> types.CallToolResult:
        model = ResumeArguments if tool == RESUME_TOOL else AskArguments
        try:
            args: AskArguments | ResumeArguments = model.model_validate(arguments)
        except ValidationError as exc:
            return invalid_arguments(tool, exc)
        planner = self.planner
        hook = _forward_to(progress)
        # `timeout_s` counts from the call, waiting for the planner's turn included.
        deadline = asyncio.timeout(self.timeout_s)
        try:
            async with deadline, self._turn:
                planner.hooks.event.append(hook)
                try:
                    if isinstance(args, ResumeArguments):
                        outcome = await planner.resume(args.token, user_input=args.user_input)
                    else:
                        outcome = await planner.run(args.query, context_meta=args.context)
                finally:
                    planner.hooks.event.remove(hook)
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                return timed_out(self.timeout_s)
            return failed(f"the agent's run ({tool})", exc)
        if isinstance(outcome, PlannerPause):
            return _paused(outcome)
        return _finished(outcome)


def _forward_to(progress: Progress) -> PlannerEventCallback:
    def hook(event: PlannerEvent) -> None:
        message = progress_message(event)
        if message is not None:
            progress.report(message)

    return hook


def _finished(finish: PlannerFinish) -> types.CallToolResult:
    structured: dict[str, Any] = {
        "status": "finished",
        "reason": finish.reason,
        "payload": jsonable(finish.payload),
    }
    usage = finish.metadata.get("usage")
    if usage is not None:
        structured["usage"] = jsonable(usage)
    if finish.reason == "answer_complete":
        payload = finish.payload
        answer = payload.get("answer") if isinstance(payload, Mapping) else None
        return result(answer if isinstance(answer, str) else as_text(payload), structured)
    thought = finish.metadata.get("thought")
    why = f" ({thought})" if thought else ""
    return result(
        f"the agent stopped without an answer: {finish.reason}{why}", structured, error=True
    )


def _paused(pause: PlannerPause) -> types.CallToolResult:
    payload = jsonable(pause.payload)
    structured = {
        "status": "paused",
        "reason": pause.reason,
        "payload": payload,
        "resume_token": pause.resume_token,
    }
    return result(
        f"paused ({pause.reason}): {as_text(payload)}; call {RESUME_TOOL!r} with "
        f"token={pause.resume_token!r} (and user_input) to continue",
        structured,
    )


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema
