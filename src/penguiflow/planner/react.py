"""ReactPlanner: a JSON-only ReAct loop over a typed tool catalog."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ..catalog import NodeSpec, build_catalog
from ..node import Node
from ..registry import ModelRegistry
from . import prompts
from .clients.protocol import JSONLLMClient as JSONLLMClient
from .constraints import _ConstraintTracker as _ConstraintTracker
from .constraints import _PlanningHints as _PlanningHints
from .messages import build_messages, estimate_size, summarise_trajectory
from .models import (
    ParallelCall,
    ParallelJoin,
    PlannerAction,
    PlannerEvent,
    PlannerEventCallback,
    PlannerFinish,
    PlannerPause,
    Trajectory,
    TrajectoryStep,
    TrajectorySummary,
    action_schema,
)
from .models import (
    PlannerPauseReason as PlannerPauseReason,
)
from .pause import PauseBook, serialise_record
from .pause import _PauseRecord as _PauseRecord
from .pause import _PlannerPauseSignal as _PlannerPauseSignal
from .repair import extract_json_object

if TYPE_CHECKING:
    pass

__all__ = [
    "ParallelCall",
    "ParallelJoin",
    "PlannerAction",
    "PlannerEvent",
    "PlannerEventCallback",
    "PlannerFinish",
    "PlannerPause",
    "ReactPlanner",
    "Trajectory",
    "TrajectoryStep",
    "TrajectorySummary",
]

logger = logging.getLogger("penguiflow.planner")

_PAUSE_DISABLED = "Pause/resume is disabled for this planner"
_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "model")


def __getattr__(name: str) -> Any:
    if name == "_LiteLLMJSONClient":
        from .clients.litellm_client import _LiteLLMJSONClient

        return _LiteLLMJSONClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _PlannerContext:
    """What a tool receives as its second argument: `meta` and `pause()`."""

    __slots__ = ("_planner", "_trajectory", "meta")

    def __init__(self, planner: ReactPlanner, trajectory: Trajectory) -> None:
        self.meta: dict[str, Any] = dict(trajectory.context_meta or {})
        self._planner = planner
        self._trajectory = trajectory

    async def pause(
        self, reason: PlannerPauseReason, payload: Mapping[str, Any] | None = None
    ) -> PlannerPause:
        """Suspend the run until `ReactPlanner.resume()`; never returns normally."""
        return await self._planner._pause_from_context(reason, payload, self._trajectory)


@dataclass(slots=True)
class _BranchExecutionResult:
    observation: BaseModel | None = None
    error: str | None = None
    failure: dict[str, Any] | None = None
    pause: PlannerPause | None = None


def _new_token() -> str:
    # 128 random bits, shaped like uuid4().hex (32 lowercase hex characters).
    return secrets.token_hex(16)


class ReactPlanner:
    """Plans with an LLM over a catalog of typed tools until it has an answer.

    Each turn the LLM replies with a `PlannerAction` (JSON): call one tool, run a
    parallel plan with an optional join, or finish. Invalid replies are repaired
    or re-asked; invalid arguments never reach a tool. Budgets (iterations, hops,
    deadline, tokens) and planning hints bound the run; a tool can pause it for a
    human (`ctx.pause`), and `resume(token)` continues it. Not safe for concurrent
    `run()` calls on one instance: build one planner per concurrent run.
    """

    DEFAULT_MAX_PARALLEL = 50

    def __init__(
        self,
        llm: str | Mapping[str, Any] | None = None,
        *,
        nodes: Sequence[Node] | None = None,
        catalog: Sequence[NodeSpec] | None = None,
        registry: ModelRegistry | None = None,
        llm_client: JSONLLMClient | None = None,
        max_iters: int = 8,
        temperature: float = 0.0,
        json_schema_mode: bool = True,
        system_prompt_extra: str | None = None,
        token_budget: int | None = None,
        pause_enabled: bool = True,
        state_store: Any | None = None,
        summarizer_llm: str | Mapping[str, Any] | None = None,
        planning_hints: Mapping[str, Any] | None = None,
        repair_attempts: int = 3,
        deadline_s: float | None = None,
        hop_budget: int | None = None,
        time_source: Callable[[], float] | None = None,
        event_callback: PlannerEventCallback | None = None,
        llm_timeout_s: float = 60.0,
        llm_max_retries: int = 3,
        absolute_max_parallel: int = 50,
    ) -> None:
        if catalog is None:
            if nodes is None or registry is None:
                raise ValueError("Either catalog or (nodes and registry) must be provided")
            catalog = build_catalog(nodes, registry)
        self._specs: list[NodeSpec] = list(catalog)
        self._spec_by_name: dict[str, NodeSpec] = {spec.name: spec for spec in self._specs}
        self._catalog_records = _catalog_records(self._specs)
        self._planning_hints = _PlanningHints.from_mapping(planning_hints)
        hints_payload = (
            None if self._planning_hints.is_empty() else self._planning_hints.to_prompt_payload()
        )
        self._system_prompt = _system_prompt(
            self._specs, self._catalog_records, system_prompt_extra, hints_payload
        )
        self._max_iters = max_iters
        self._repair_attempts = repair_attempts
        self._json_schema_mode = json_schema_mode
        self._token_budget = token_budget
        self._pause_enabled = pause_enabled
        self._state_store = state_store
        self._pauses = PauseBook(state_store)
        self._pause_records = self._pauses.records
        self._active_trajectory: Trajectory | None = None
        self._active_tracker: _ConstraintTracker | None = None
        self._deadline_s = deadline_s
        self._hop_budget = hop_budget
        self._time_source = time_source or time.monotonic
        self._event_callback = event_callback
        self._absolute_max_parallel = absolute_max_parallel
        self._action_schema = action_schema()
        self._response_format = self._action_schema if json_schema_mode else None
        self._summarizer_client: JSONLLMClient | None = None
        if llm_client is not None:
            self._client: JSONLLMClient = llm_client
        elif llm is None:
            raise ValueError("llm or llm_client must be provided")
        else:
            self._client = _litellm_client(
                llm, temperature, json_schema_mode, llm_max_retries, llm_timeout_s
            )
        if summarizer_llm is not None:
            self._summarizer_client = _litellm_client(
                summarizer_llm, temperature, True, llm_max_retries, llm_timeout_s
            )

    # -- public API ------------------------------------------------------------------

    async def run(
        self, query: str, *, context_meta: Mapping[str, Any] | None = None
    ) -> PlannerFinish | PlannerPause:
        """Plan and act until the query is answered, a budget runs out, or a tool pauses."""
        logger.info("planner_run_start", extra={"query": query})
        trajectory = Trajectory(query=query, context_meta=context_meta)
        return await self._run_loop(trajectory, tracker=None)

    async def resume(
        self, token: str, user_input: str | None = None
    ) -> PlannerFinish | PlannerPause:
        """Continue a paused run. Raises `KeyError` for an unknown or used token."""
        logger.info("planner_resume", extra={"token": f"{token[:8]}..."})
        record = await self._load_pause_record(token)
        trajectory = record.trajectory
        trajectory.context_meta = trajectory.context_meta or {}
        if user_input is not None:
            trajectory.resume_user_input = user_input
        tracker = None
        if record.constraints is not None:
            tracker = _ConstraintTracker.from_snapshot(
                record.constraints, time_source=self._time_source
            )
        self._emit_event(
            PlannerEvent(
                "resume",
                ts=self._time_source(),
                trajectory_step=len(trajectory.steps),
                extra={"user_input": user_input} if user_input else {},
            )
        )
        return await self._run_loop(trajectory, tracker=tracker)

    async def pause(
        self, reason: PlannerPauseReason, payload: Mapping[str, Any] | None = None
    ) -> PlannerPause:
        """Record a pause for the active run and return it (the run continues)."""
        trajectory = self._active_trajectory
        if trajectory is None:
            raise RuntimeError("pause() requires an active planner run")
        pause = self._new_pause(reason, payload)
        await self._record_pause(pause, trajectory, self._active_tracker)
        return pause

    async def step(self, trajectory: Trajectory) -> PlannerAction:
        """Ask the LLM for the next action, repairing or re-asking on invalid replies."""
        base = await self._build_messages(trajectory)
        last_error: str | None = None
        for attempt in range(1, self._repair_attempts + 1):
            messages = base
            if last_error is not None:
                repair = {"role": "system", "content": prompts.render_repair_message(last_error)}
                messages = [*base, repair]
            raw = await self._complete(
                self._client, messages, self._format_for(self._client), trajectory, attempt
            )
            try:
                return PlannerAction.model_validate_json(raw)
            except ValidationError as exc:
                action = _repaired_action(raw)
                if action is not None:
                    return action
                last_error = prompts.safe_error_json(exc)
        raise RuntimeError("Planner failed to produce valid JSON after repair attempts")

    # -- the loop --------------------------------------------------------------------

    async def _run_loop(
        self, trajectory: Trajectory, *, tracker: _ConstraintTracker | None
    ) -> PlannerFinish | PlannerPause:
        last_observation: Any = None
        if tracker is None:
            tracker = _ConstraintTracker(
                deadline_s=self._deadline_s,
                hop_budget=self._hop_budget,
                time_source=self._time_source,
            )
        self._active_trajectory = trajectory
        self._active_tracker = tracker
        try:
            while len(trajectory.steps) < self._max_iters:
                deadline_message = tracker.check_deadline()
                if deadline_message is not None:
                    logger.warning("deadline_exhausted", extra={"step": len(trajectory.steps)})
                    return self._finish(
                        trajectory,
                        reason="budget_exhausted",
                        payload=last_observation,
                        thought=deadline_message,
                        constraints=tracker,
                    )
                step_start_ts = self._time_source()
                listening = self._listening()
                if listening:
                    self._emit_event(
                        PlannerEvent(
                            "step_start", ts=step_start_ts, trajectory_step=len(trajectory.steps)
                        )
                    )
                action = await self.step(trajectory)
                if logger.isEnabledFor(logging.INFO):
                    logger.info(
                        "planner_action",
                        extra={
                            "step": len(trajectory.steps),
                            "thought": action.thought,
                            "next_node": action.next_node,
                            "has_plan": action.plan is not None,
                        },
                    )
                constraint_error = self._check_action_constraints(action, trajectory, tracker)
                if constraint_error is not None:
                    self._append(trajectory, TrajectoryStep(action, error=constraint_error))
                    continue
                if action.plan:
                    from .parallel import execute_parallel_plan

                    observation, pause = await execute_parallel_plan(
                        self, action, trajectory, tracker
                    )
                    if pause is not None:
                        return pause
                    trajectory.summary = None
                    last_observation = observation
                    trajectory.resume_user_input = None
                    continue
                if action.next_node is None:
                    return self._finish(
                        trajectory,
                        reason="answer_complete",
                        payload=action.args or last_observation,
                        thought=action.thought,
                        constraints=tracker,
                    )
                spec = self._spec_by_name.get(action.next_node)
                if spec is None:
                    error = prompts.render_invalid_node(action.next_node, list(self._spec_by_name))
                    self._append(trajectory, TrajectoryStep(action, error=error))
                    continue
                try:
                    parsed = spec.args_model.model_validate(action.args or {})
                except ValidationError as exc:
                    error = prompts.render_validation_error(spec.name, prompts.safe_error_json(exc))
                    self._append(trajectory, TrajectoryStep(action, error=error))
                    continue
                ctx = _PlannerContext(self, trajectory)
                try:
                    result = await spec.node.func(parsed, ctx)
                except _PlannerPauseSignal as signal:
                    tracker.record_hop()
                    pause = signal.pause
                    observation = {"pause": pause.reason, "payload": pause.payload}
                    self._append(trajectory, TrajectoryStep(action, observation=observation))
                    await self._record_pause(pause, trajectory, tracker)
                    return pause
                except Exception as exc:
                    failure = self._build_failure_payload(spec, parsed, exc)
                    error = f"tool '{spec.name}' raised {type(exc).__name__}: {exc}"
                    self._append(trajectory, TrajectoryStep(action, error=error, failure=failure))
                    tracker.record_hop()
                    last_observation = None
                    continue
                try:
                    observation_model = spec.out_model.model_validate(result)
                except ValidationError as exc:
                    tracker.record_hop()
                    error = prompts.render_output_validation_error(
                        spec.name, prompts.safe_error_json(exc)
                    )
                    self._append(trajectory, TrajectoryStep(action, error=error))
                    last_observation = None
                    continue
                self._append(trajectory, TrajectoryStep(action, observation=observation_model))
                tracker.record_hop()
                last_observation = observation_model.model_dump(mode="json")
                self._record_hint_progress(spec.name, trajectory)
                trajectory.resume_user_input = None
                if not listening:
                    continue
                latency_ms = (self._time_source() - step_start_ts) * 1000
                self._emit_event(
                    PlannerEvent(
                        "step_complete",
                        ts=self._time_source(),
                        trajectory_step=len(trajectory.steps) - 1,
                        thought=action.thought,
                        node_name=spec.name,
                        latency_ms=latency_ms,
                    )
                )
            if tracker.deadline_triggered or tracker.hop_exhausted:
                thought = (
                    prompts.render_deadline_exhausted()
                    if tracker.deadline_triggered
                    else prompts.render_hop_budget_violation(self._hop_budget or 0)
                )
                return self._finish(
                    trajectory,
                    reason="budget_exhausted",
                    payload=last_observation,
                    thought=thought,
                    constraints=tracker,
                )
            return self._finish(
                trajectory,
                reason="no_path",
                payload=last_observation,
                thought="iteration limit reached",
                constraints=tracker,
            )
        finally:
            self._active_trajectory = None
            self._active_tracker = None

    def _append(self, trajectory: Trajectory, step: TrajectoryStep) -> None:
        trajectory.steps.append(step)
        trajectory.summary = None

    # -- constraints and hints -------------------------------------------------------

    def _check_action_constraints(
        self, action: PlannerAction, trajectory: Trajectory, tracker: _ConstraintTracker
    ) -> str | None:
        hints = self._planning_hints
        if action.next_node and not tracker.has_budget_for_next_tool():
            return prompts.render_hop_budget_violation(self._hop_budget or 0)
        if action.next_node and action.next_node in hints.disallow_nodes:
            return prompts.render_disallowed_node(action.next_node)
        plan = action.plan
        if plan:
            if len(plan) > self._absolute_max_parallel:
                logger.warning(
                    "parallel_limit_absolute",
                    extra={"requested": len(plan), "limit": self._absolute_max_parallel},
                )
                return prompts.render_parallel_limit(self._absolute_max_parallel)
            if hints.max_parallel is not None and len(plan) > hints.max_parallel:
                return prompts.render_parallel_limit(hints.max_parallel)
            # Parallel plans (and their join) count against the hop budget and the
            # disallowed tools too (the reference checked neither).
            needed = len(plan) + (1 if action.join is not None else 0)
            budget = tracker.hop_budget
            if budget is not None and tracker.hops_used + needed > budget:
                return prompts.render_hop_budget_violation(self._hop_budget or 0)
            names = [entry.node for entry in plan]
            if action.join is not None:
                names.append(action.join.node)
            for name in names:
                if name in hints.disallow_nodes:
                    return prompts.render_disallowed_node(name)
        if hints.sequential_only and plan:
            for entry in plan:
                if entry.node in hints.sequential_only:
                    return prompts.render_sequential_only(entry.node)
        if hints.ordering_hints and action.next_node is not None:
            state = _ordering_state(trajectory)
            completed = state["completed"]
            expected_index = len(completed)
            ordering = hints.ordering_hints
            if (
                expected_index < len(ordering)
                and action.next_node != ordering[expected_index]
                and action.next_node in ordering
                and not state["warned"]
            ):
                state["warned"] = True
                return prompts.render_ordering_hint_violation(list(ordering), action.next_node)
        return None

    def _record_hint_progress(self, node_name: str, trajectory: Trajectory) -> None:
        ordering = self._planning_hints.ordering_hints
        if not ordering:
            return
        state = _ordering_state(trajectory)
        completed = state["completed"]
        if len(completed) < len(ordering) and ordering[len(completed)] == node_name:
            completed.append(node_name)
            state["warned"] = False

    def _build_failure_payload(
        self, spec: NodeSpec, args: BaseModel, exc: Exception
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "node": spec.name,
            "args": args.model_dump(mode="json"),
            "error_code": type(exc).__name__,
            "message": str(exc),
        }
        suggestion = getattr(exc, "suggestion", None)
        if suggestion is None:
            suggestion = getattr(exc, "remedy", None)
        if suggestion:
            payload["suggestion"] = str(suggestion)
        return payload

    # -- LLM calls -------------------------------------------------------------------

    def _format_for(self, client: Any) -> Mapping[str, Any] | None:
        if self._json_schema_mode or getattr(client, "expects_json_schema", False):
            return self._action_schema
        return None

    async def _complete(
        self,
        client: JSONLLMClient,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None,
        trajectory: Trajectory,
        attempt: int,
        *,
        purpose: str = "action",
    ) -> str:
        started = time.perf_counter()
        error: str | None = None
        raw: Any = None
        try:
            raw = await client.complete(messages=messages, response_format=response_format)
            return raw  # type: ignore[no-any-return]
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if self._listening():
                self._emit_llm_call(raw, trajectory, attempt, purpose, started, error)

    def _emit_llm_call(
        self,
        raw: Any,
        trajectory: Trajectory,
        attempt: int,
        purpose: str,
        started: float,
        error: str | None,
    ) -> None:
        extra: dict[str, Any] = {"attempt": attempt, "purpose": purpose}
        for key in _USAGE_KEYS:
            value = getattr(raw, key, None)
            if value is not None:
                extra[key] = value
        self._emit_event(
            PlannerEvent(
                "llm_call",
                ts=self._time_source(),
                trajectory_step=len(trajectory.steps),
                latency_ms=(time.perf_counter() - started) * 1000,
                error=error,
                extra=extra,
            )
        )

    # -- messages and summaries -----------------------------------------------------

    async def _build_messages(self, trajectory: Trajectory) -> list[dict[str, str]]:
        return await build_messages(self, trajectory)

    def _estimate_size(self, messages: Sequence[Mapping[str, str]]) -> int:
        return estimate_size(messages)

    async def _summarise_trajectory(self, trajectory: Trajectory) -> TrajectorySummary:
        return await summarise_trajectory(self, trajectory)

    # -- pauses ----------------------------------------------------------------------

    def _new_pause(
        self, reason: PlannerPauseReason, payload: Mapping[str, Any] | None
    ) -> PlannerPause:
        if not self._pause_enabled:
            raise RuntimeError(_PAUSE_DISABLED)
        return PlannerPause(reason=reason, payload=dict(payload or {}), resume_token=_new_token())

    async def _pause_from_context(
        self,
        reason: PlannerPauseReason,
        payload: Mapping[str, Any] | None,
        trajectory: Trajectory,
    ) -> PlannerPause:
        # The loop stores the record once, complete, when it sees the signal; a tool
        # that swallows the signal therefore leaves no orphan record behind.
        raise _PlannerPauseSignal(self._new_pause(reason, payload))

    async def _record_pause(
        self, pause: PlannerPause, trajectory: Trajectory, tracker: _ConstraintTracker | None
    ) -> None:
        record = _PauseRecord(
            trajectory=Trajectory.from_serialised(trajectory.serialise()),
            reason=pause.reason,
            payload=dict(pause.payload),
            constraints=tracker.snapshot() if tracker is not None else None,
        )
        store_error = await self._pauses.store(pause.resume_token, record)
        extra: dict[str, Any] = {"reason": pause.reason}
        if store_error is not None:
            # Visible to the caller: whether the pause reached the durable store.
            extra["persisted"] = store_error == ""
        self._emit_event(
            PlannerEvent(
                "pause",
                ts=self._time_source(),
                trajectory_step=len(trajectory.steps),
                error=f"state store save failed: {store_error}" if store_error else None,
                extra=extra,
            )
        )

    async def _store_pause_record(self, token: str, record: _PauseRecord) -> None:
        await self._pauses.store(token, record)

    async def _load_pause_record(self, token: str) -> _PauseRecord:
        return await self._pauses.load(token)

    def _serialise_pause_record(self, record: _PauseRecord) -> dict[str, Any]:
        return serialise_record(record)

    # -- events and finishing --------------------------------------------------------

    def _listening(self) -> bool:
        """Whether anyone sees events (a callback, or INFO logging)."""
        return self._event_callback is not None or logger.isEnabledFor(logging.INFO)

    def _emit_event(self, event: PlannerEvent) -> None:
        if logger.isEnabledFor(logging.INFO):
            logger.info(event.event_type, extra=_log_safe(event.to_payload()))
        callback = self._event_callback
        if callback is None:
            return
        try:
            callback(event)
        except Exception:
            logger.exception(
                "event_callback_error",
                extra={"event_type": event.event_type, "step": event.trajectory_step},
            )

    def _finish(
        self,
        trajectory: Trajectory,
        *,
        reason: str,
        payload: Any,
        thought: str,
        constraints: _ConstraintTracker | None = None,
        error: str | None = None,
    ) -> PlannerFinish:
        metadata: dict[str, Any] = {
            "reason": reason,
            "thought": thought,
            "steps": trajectory.to_history(),
            "step_count": len(trajectory.steps),
        }
        if constraints is not None:
            metadata["constraints"] = constraints.snapshot()
        extra: dict[str, Any] = {"reason": reason}
        if error is not None:
            metadata["error"] = error
            extra["error"] = error
        self._emit_event(
            PlannerEvent(
                "finish",
                ts=self._time_source(),
                trajectory_step=len(trajectory.steps),
                thought=thought,
                extra=extra,
            )
        )
        logger.info(
            "planner_finish",
            extra={"reason": reason, "step_count": len(trajectory.steps), "thought": thought},
        )
        return PlannerFinish(reason=reason, payload=payload, metadata=metadata)  # type: ignore[arg-type]

    async def _execute_parallel_plan(
        self, action: PlannerAction, trajectory: Trajectory, tracker: _ConstraintTracker
    ) -> tuple[Any, PlannerPause | None]:
        from .parallel import execute_parallel_plan

        return await execute_parallel_plan(self, action, trajectory, tracker)

    async def _run_parallel_branch(
        self, spec: NodeSpec, args: BaseModel, ctx: _PlannerContext
    ) -> _BranchExecutionResult:
        from .parallel import run_branch

        return await run_branch(spec, args, ctx)


# -- helpers -------------------------------------------------------------------------

# System prompts by catalog identity: a planner per request reuses the prompt of the
# catalog it shares with other planners instead of rebuilding it. The value keeps the
# specs alive, so their ids cannot be reused while the entry exists.
_SYSTEM_PROMPTS: dict[tuple[Any, ...], tuple[tuple[NodeSpec, ...], str]] = {}
_RECORDS: dict[tuple[int, ...], tuple[tuple[NodeSpec, ...], list[dict[str, Any]]]] = {}


def _catalog_records(specs: list[NodeSpec]) -> list[dict[str, Any]]:
    """The tool records of a catalog, shared by every planner over the same specs."""
    key = tuple(map(id, specs))
    cached = _RECORDS.get(key)
    if cached is not None:
        return cached[1]
    records = [spec.to_tool_record() for spec in specs]
    if len(_RECORDS) >= 256:
        _RECORDS.clear()
    _RECORDS[key] = (tuple(specs), records)
    return records


def _system_prompt(
    specs: list[NodeSpec],
    records: list[dict[str, Any]],
    extra: str | None,
    hints: dict[str, Any] | None,
) -> str:
    """Build (or reuse) the system prompt for this exact catalog, guidance and hints."""
    hints_key = json.dumps(hints, sort_keys=True, default=str) if hints else None
    key = (tuple(map(id, specs)), extra, hints_key)
    cached = _SYSTEM_PROMPTS.get(key)
    if cached is not None:
        return cached[1]
    prompt = prompts.build_system_prompt(records, extra=extra, planning_hints=hints)
    if len(_SYSTEM_PROMPTS) >= 256:
        _SYSTEM_PROMPTS.clear()
    _SYSTEM_PROMPTS[key] = (tuple(specs), prompt)
    return prompt


def _litellm_client(
    llm: str | Mapping[str, Any],
    temperature: float,
    json_schema_mode: bool,
    max_retries: int,
    timeout_s: float,
) -> JSONLLMClient:
    from .clients.litellm_client import _LiteLLMJSONClient

    return _LiteLLMJSONClient(
        llm,
        temperature=temperature,
        json_schema_mode=json_schema_mode,
        max_retries=max_retries,
        timeout_s=timeout_s,
    )


def _ordering_state(trajectory: Trajectory) -> dict[str, Any]:
    state = trajectory.hint_state.setdefault("ordering_state", {"completed": [], "warned": False})
    state.setdefault("completed", [])
    state.setdefault("warned", False)
    return state  # type: ignore[no-any-return]


def _repaired_action(raw: Any) -> PlannerAction | None:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if not isinstance(text, str):
        return None
    candidate = extract_json_object(text)
    if candidate is None or candidate == text:
        return None
    try:
        return PlannerAction.model_validate_json(candidate)
    except ValidationError:
        return None


_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _log_safe(payload: dict[str, Any]) -> dict[str, Any]:
    return {(f"extra_{k}" if k in _RESERVED else k): v for k, v in payload.items()}
