"""ReactPlanner: a JSON-only ReAct loop over a typed tool catalog.

The planner is the loop; its parts do the rest: `Conversation` (the messages),
`LLMChannel` (the LLM calls), `ActionRules` (what an action may do), `ToolRunner`
(every tool call), `run_parallel_plan` (fan-out and join), `PauseBook` (pauses) and
`EventSink` (events).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar, overload

from pydantic import BaseModel, ValidationError

from .._logfmt import LogLine
from ..catalog import NodeSpec, build_catalog
from ..errors import InvalidArgumentError
from ..node import Node
from ..registry import ModelRegistry
from ..spans import new_id
from ..tracing.emitter import SpanEmitter
from . import prompts
from .action_schema import ActionSchemas, rejects_schema
from .answer_stream import AnswerStream
from .checks import FinishCheck, FinishProblem, repeated_call, repeated_failure
from .checks import record as record_finish_check
from .clients.protocol import JSONLLMClient as JSONLLMClient
from .clients.retry import LLMRequestError, LLMStreamDivergedError
from .constraints import ConstraintTracker
from .errors import ActionRepairError, NoActiveRunError
from .events import EventSink
from .hints import PlanningHints
from .llm import LLMChannel
from .messages import Conversation, catalog_prompt, estimate_size
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
)
from .models import (
    PlannerPauseReason as PlannerPauseReason,
)
from .observe import PlannerHooks, RunState, RunTrace
from .parallel import run_parallel_plan
from .pause import PauseBook, PauseRecord, PauseSignal
from .repair import extract_json_object
from .rules import ActionRules
from .tools import PlannerContext, ToolOutcome, ToolRunner, failure_payload
from .toolsets import Toolset, ToolsetCatalog
from .usage import Ledger, Usage, current_ledger
from .validation import dump_json, validate_json

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

_T = TypeVar("_T")


class _Alias(Generic[_T]):
    """A private attribute of the reference implementation, read and written through to
    the attribute of the part that owns it now (see the compatibility block below)."""

    __slots__ = ("attribute", "part")

    def __init__(self, part: str, attribute: str) -> None:
        self.part = part
        self.attribute = attribute

    @overload
    def __get__(self, planner: None, owner: type[Any]) -> _Alias[_T]: ...
    @overload
    def __get__(self, planner: object, owner: type[Any]) -> _T: ...
    def __get__(self, planner: object | None, owner: type[Any]) -> _T | _Alias[_T]:
        if planner is None:
            return self
        value: _T = getattr(getattr(planner, self.part), self.attribute)
        return value

    def __set__(self, planner: object, value: _T) -> None:
        setattr(getattr(planner, self.part), self.attribute, value)


class ReactPlanner:
    """Plans with an LLM over a catalog of typed tools until it has an answer.

    Each turn the LLM replies with a `PlannerAction` (JSON): call one tool, run a
    parallel plan with an optional join, or finish. Invalid replies are repaired
    or re-asked; invalid arguments never reach a tool. Budgets (iterations, hops,
    deadline, tokens) and planning hints bound the run; a tool can pause it for a
    human (`ctx.pause`), and `resume(token)` continues it. Not safe for concurrent
    `run()` calls on one instance: build one planner per concurrent run.

    `toolsets` are tool sources whose tools may change while the planner lives (such
    as `penguiflow.mcp.MCPToolset`): their tools join the catalog, and a change is
    picked up before the next step (see `penguiflow.planner.toolsets`).

    When code observes the run (`event_callback` or `hooks.event`) and the client
    streams (`complete_streaming`), the final answer is emitted as it is generated,
    as `llm_stream_chunk` events (see `penguiflow.planner.answer_stream`);
    `stream_answer=False` turns that off.

    In JSON-schema mode, after two steps in a row that got nowhere, the next reply is
    narrowed: a finish after the same call returned the same result, another tool or
    a finish after the same tool failed twice (see `penguiflow.planner.action_schema`).
    `repeat_guard=False` turns that off, for a loop that polls a tool until its
    result changes.

    Raises `InvalidArgumentError` (a `ValueError`) without a catalog (or nodes and a
    registry) or without an LLM (`llm` or `llm_client`).
    """

    DEFAULT_MAX_PARALLEL = 50

    def __init__(
        self,
        llm: str | Mapping[str, Any] | None = None,
        *,
        nodes: Sequence[Node | Callable[..., Any]] | None = None,
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
        cost_budget_usd: float | None = None,
        finish_check: FinishCheck | bool = True,
        toolsets: Sequence[Toolset] = (),
        stream_answer: bool = True,
        repeat_guard: bool = True,
    ) -> None:
        if cost_budget_usd is not None and not (
            isinstance(cost_budget_usd, int | float) and cost_budget_usd >= 0
        ):
            raise InvalidArgumentError(
                f"cost_budget_usd must be a non-negative number of dollars, got {cost_budget_usd!r}"
            )
        if catalog is None and nodes is None and toolsets:
            catalog = []  # every tool comes from the toolsets
        if catalog is None:
            if nodes is None or (registry is None and not _typed_by_hints(nodes)):
                raise InvalidArgumentError(
                    "Either catalog or (nodes and registry) must be provided"
                )
            catalog = build_catalog(nodes, registry)
        hints = PlanningHints.from_mapping(planning_hints)
        rules = ActionRules(
            hints, hop_budget=hop_budget, absolute_max_parallel=absolute_max_parallel
        )
        # The catalog plus the toolsets' specs, rebuilt between steps when a toolset's
        # tools change (`_sync_toolsets`).
        self._toolsets = ToolsetCatalog(catalog, toolsets)
        self._tools = ToolRunner(self._toolsets.specs, rules)
        hints_payload = None
        if planning_hints and not hints.is_empty():
            hints_payload = hints.to_prompt_payload()
        self._prompt_parts = (system_prompt_extra, hints_payload)
        self._catalog_records, system_prompt = catalog_prompt(
            self._tools.specs, system_prompt_extra, hints_payload
        )
        self._rules = rules
        if finish_check is True:
            finish_check = FinishCheck()
        elif finish_check is False:
            finish_check = FinishCheck.off()
        elif not isinstance(finish_check, FinishCheck):
            raise InvalidArgumentError(
                f"finish_check must be a FinishCheck or a bool, got {finish_check!r}"
            )
        self._finish_check = finish_check
        if not isinstance(repeat_guard, bool):
            raise InvalidArgumentError(f"repeat_guard must be a bool, got {repeat_guard!r}")
        self._repeat_guard = repeat_guard
        self._max_iters = max_iters
        self._repair_attempts = repair_attempts
        self._deadline_s = deadline_s
        self._active_trajectory: Trajectory | None = None
        self._active_tracker: ConstraintTracker | None = None
        self._active_run: RunState | None = None
        self._cost_budget_usd = None if cost_budget_usd is None else float(cost_budget_usd)
        self.hooks = PlannerHooks()
        self._spans = SpanEmitter(self.hooks.span)
        self._events = EventSink(
            event_callback, time_source or time.monotonic, hooks=self.hooks.event
        )
        self._pauses = PauseBook(state_store, enabled=pause_enabled, events=self._events)
        if llm_client is not None:
            client: JSONLLMClient = llm_client
        elif llm is None:
            raise InvalidArgumentError("llm or llm_client must be provided")
        else:
            client = _litellm_client(
                llm, temperature, json_schema_mode, llm_max_retries, llm_timeout_s
            )
        summarizer = None
        if summarizer_llm is not None:
            summarizer = _litellm_client(
                summarizer_llm, temperature, True, llm_max_retries, llm_timeout_s
            )
        self._llm = LLMChannel(
            client,
            summarizer=summarizer,
            json_schema_mode=json_schema_mode,
            events=self._events,
            schemas=ActionSchemas(self._tools.specs),
            stream_answer=stream_answer,
        )
        self._conversation = Conversation(system_prompt, token_budget, self._llm)

    # -- public API ------------------------------------------------------------------

    @property
    def pause_enabled(self) -> bool:
        """Whether tools may pause a run (`pause_enabled=` of the constructor)."""
        return self._pauses.enabled

    async def run(
        self, query: str, *, context_meta: Mapping[str, Any] | None = None
    ) -> PlannerFinish | PlannerPause:
        """Plan and act until the query is answered, a budget runs out, or a tool pauses."""
        if logger.isEnabledFor(logging.INFO):
            logger.info(LogLine("planner_run_start"), {"query": query}, extra={"query": query})
        trajectory = Trajectory(query=query, context_meta=context_meta)
        return await self._run_loop(trajectory, tracker=None)

    async def resume(
        self, token: str, user_input: str | None = None
    ) -> PlannerFinish | PlannerPause:
        """Continue a paused run.

        Raises `ResumeError` (a `KeyError`) for an unknown or used token, or when the
        state store fails to load it.
        """
        hint = {"token": f"{token[:8]}..."}
        logger.info(LogLine("planner_resume"), hint, extra=hint)
        record = await self._pauses.load(token)
        trajectory = record.trajectory
        trajectory.context_meta = trajectory.context_meta or {}
        if user_input is not None:
            trajectory.resume_user_input = user_input
        tracker = None
        if record.constraints is not None:
            tracker = ConstraintTracker.from_snapshot(
                record.constraints, time_source=self._events.time_source
            )
        self._events.emit_now(
            "resume",
            len(trajectory.steps),
            extra={"user_input": user_input} if user_input else None,
        )
        return await self._run_loop(
            trajectory, tracker=tracker, resumed=record.run or {}, user_input=user_input
        )

    async def pause(
        self, reason: PlannerPauseReason, payload: Mapping[str, Any] | None = None
    ) -> PlannerPause:
        """Record a pause for the active run and return it (the run continues).

        Raises `NoActiveRunError` outside a run and `PauseDisabledError` when pausing
        is off (both `RuntimeError`s).
        """
        trajectory = self._active_trajectory
        if trajectory is None:
            raise NoActiveRunError
        pause = self._pauses.new(reason, payload)
        run = self._active_run
        info = self._run_info(run) if run is not None else None
        await self._pauses.record(pause, trajectory, self._active_tracker, info)
        return pause

    async def step(self, trajectory: Trajectory) -> PlannerAction:
        """Ask the LLM for the next action, repairing or re-asking on invalid replies.

        Raises `ActionRepairError` (a `RuntimeError`) when no reply within
        `repair_attempts` calls is a valid action; client errors propagate.
        """
        conversation = self._conversation
        base = conversation.history(trajectory)
        if conversation.token_budget is not None:
            base = await conversation.fit(trajectory, base)
        llm = self._llm
        last_error: str | None = None
        # Each failed reply and its correction stay in the conversation of the next
        # try: a re-ask that resent the same request would get, at temperature 0,
        # the same invalid reply.
        repairs: list[dict[str, str]] = []
        attempt = 1
        diverged = False
        repeated = repeated_call(trajectory) if self._repeat_guard else None
        while attempt <= self._repair_attempts:
            messages = [*base, *repairs] if repairs else base
            client = llm.client
            run = self._active_run
            response_format = llm.format_for(
                client,
                held=run.refused_args if run is not None else None,
                repeated=repeated,
            )
            answer = llm.answer_stream(client, trajectory)
            try:
                raw = await llm.complete(
                    client,
                    messages,
                    response_format,
                    trajectory,
                    attempt,
                    on_delta=None if answer is None else answer.feed,
                )
            except LLMRequestError as exc:
                if answer is not None:
                    answer.discard()
                if (
                    llm.schemas.sent(response_format)
                    and rejects_schema(exc)
                    and llm.schemas.fall_back(exc)
                ):
                    continue  # the same attempt, with a schema the server accepts
                raise
            except LLMStreamDivergedError:
                if answer is not None:
                    answer.discard()
                if diverged:
                    raise
                diverged = True  # the text shown is withdrawn; ask once more, anew
                continue
            except BaseException:
                if answer is not None:
                    answer.discard()
                raise
            try:
                return self._settle_answer(validate_json(PlannerAction, raw), answer)
            except ValidationError as exc:
                action = _repaired_action(raw)
                if action is not None:
                    return self._settle_answer(action, answer)
                if answer is not None:
                    answer.discard()
                last_error = prompts.safe_error_json(exc)
                repairs += [
                    {"role": "assistant", "content": _reply_text(raw)},
                    {"role": "system", "content": prompts.render_repair_message(last_error)},
                ]
            attempt += 1
        raise ActionRepairError(attempts=max(self._repair_attempts, 0), last_error=last_error)

    def _settle_answer(self, action: PlannerAction, answer: AnswerStream | None) -> PlannerAction:
        """A streamed finish waits for the loop to take it (or not); any other action's
        stream is discarded."""
        if answer is not None:
            run = self._active_run
            if run is not None and action.next_node is None and not action.plan:
                run.hold_answer(answer)
            else:
                answer.discard()
        return action

    # -- the loop --------------------------------------------------------------------

    async def _run_loop(
        self,
        trajectory: Trajectory,
        *,
        tracker: ConstraintTracker | None,
        resumed: Mapping[str, Any] | None = None,
        user_input: str | None = None,
    ) -> PlannerFinish | PlannerPause:
        events = self._events
        time_source = events.time_source
        if tracker is None:
            tracker = ConstraintTracker(
                deadline_s=self._deadline_s,
                hop_budget=self._rules.hop_budget,
                time_source=time_source,
            )
        run = self._begin_run(trajectory, resumed, user_input)
        ledger_token = current_ledger.set(run.ledger)
        self._active_trajectory = trajectory
        self._active_tracker = tracker
        self._active_run = run
        self._llm.active = run
        trace = run.trace
        tools = self._tools
        by_name = tools.by_name
        steps = trajectory.steps
        max_iters = self._max_iters
        # The last successful observation: a tool's output model is dumped only if a
        # finish falls back on it.
        last_observation: Any = None
        try:
            while len(steps) < max_iters:
                run.end_answer(taken=False)  # a streamed finish the last step did not take
                deadline_message = tracker.check_deadline() or run.ledger.exhausted(
                    tracker.hops_used
                )
                if deadline_message is not None:
                    exhausted = {"step": len(steps)}
                    logger.warning(LogLine("deadline_exhausted"), exhausted, extra=exhausted)
                    return self._finish(
                        trajectory,
                        reason="budget_exhausted",
                        payload=_dumped(last_observation),
                        thought=deadline_message,
                        constraints=tracker,
                    )
                if self._toolsets.toolsets and self._sync_toolsets():
                    tools = self._tools
                    by_name = tools.by_name
                step_start_ts = events.emit_now("step_start", len(steps))
                if trace is not None:
                    trace.begin_step(len(steps))
                listening = events.listening()
                action = await self.step(trajectory)
                run.refused_args = None
                if logger.isEnabledFor(logging.INFO):
                    chosen = {
                        "step": len(steps),
                        "next_node": action.next_node,
                        "has_plan": action.plan is not None,
                        "thought": action.thought,
                    }
                    logger.info(LogLine("planner_action"), chosen, extra=chosen)
                if trace is not None:
                    trace.describe_step(_action_kind(action), action.thought)
                error = self._rules.check(action, trajectory, tracker)
                if error is not None:
                    trajectory.append(TrajectoryStep(action, error=error))
                    continue
                if action.plan:
                    observation, pause = await self._execute_parallel_plan(
                        action, trajectory, tracker
                    )
                    if pause is not None:
                        return pause
                    trajectory.summary = None
                    last_observation = observation
                    trajectory.resume_user_input = None
                    continue
                name = action.next_node
                if name is None:
                    payload = action.args or _dumped(last_observation)
                    problem = self._finish_check.problem(action, payload, trajectory, tools.specs)
                    if problem is None:
                        run.end_answer(taken=True)
                        return self._finish(
                            trajectory,
                            reason="answer_complete",
                            payload=payload,
                            thought=action.thought,
                            constraints=tracker,
                        )
                    self._reject_finish(action, problem, trajectory)
                    continue
                spec = by_name.get(name)
                if spec is None:
                    _failed_step(trajectory, action, tools.unknown_tool(name))
                    continue
                args = tools.validate_args(spec, action.args or {})
                if isinstance(args, str):
                    _failed_step(trajectory, action, args)
                    run.refused_args = name
                    continue
                outcome = await tools.invoke(spec, args, PlannerContext(self, trajectory, run))
                tools.settle(spec, outcome, trajectory, tracker)
                result = outcome.observation
                if result is None:
                    pause = outcome.pause
                    if pause is not None:
                        observation = {"pause": pause.reason, "payload": pause.payload}
                        trajectory.append(TrajectoryStep(action, observation=observation))
                        await self._record_run_pause(pause, trajectory, tracker)
                        return pause
                    _failed_step(trajectory, action, outcome.error, outcome.failure)
                    last_observation = None
                    continue
                trajectory.append(TrajectoryStep(action, observation=result))
                last_observation = result
                trajectory.resume_user_input = None
                if listening:
                    latency_ms = (time_source() - step_start_ts) * 1000
                    events.emit(
                        PlannerEvent(
                            "step_complete",
                            ts=time_source(),
                            trajectory_step=len(steps) - 1,
                            thought=action.thought,
                            node_name=spec.name,
                            latency_ms=latency_ms,
                        )
                    )
            if tracker.deadline_triggered or tracker.hop_exhausted:
                thought = (
                    prompts.render_deadline_exhausted()
                    if tracker.deadline_triggered
                    else prompts.render_hop_budget_violation(self._rules.hop_budget or 0)
                )
                return self._finish(
                    trajectory,
                    reason="budget_exhausted",
                    payload=_dumped(last_observation),
                    thought=thought,
                    constraints=tracker,
                )
            return self._finish(
                trajectory,
                reason="no_path",
                payload=_dumped(last_observation),
                thought="iteration limit reached",
                constraints=tracker,
            )
        except BaseException as exc:
            run.close_segment()
            if trace is not None and trace.root.end is None:
                status = "error" if isinstance(exc, Exception) else "cancelled"
                trace.end(status, ledger=run.ledger, error=exc)
            raise
        finally:
            run.end_answer(taken=False)
            current_ledger.reset(ledger_token)
            self._active_trajectory = None
            self._active_tracker = None
            self._active_run = None
            self._llm.active = None

    def _sync_toolsets(self) -> bool:
        """Rebuild the tool table, system prompt and action schemas if a toolset's tools
        changed since the last step; returns whether they did."""
        specs = self._toolsets.refresh()
        if specs is None:
            return False
        self._tools = ToolRunner(specs, self._rules)
        extra, hints_payload = self._prompt_parts
        self._catalog_records, system_prompt = catalog_prompt(specs, extra, hints_payload)
        self._conversation.system_prompt = system_prompt
        self._llm.schemas = ActionSchemas(specs)
        return True

    def _reject_finish(
        self, action: PlannerAction, problem: FinishProblem, trajectory: Trajectory
    ) -> None:
        """A premature finish: the correction becomes the step's error, and an event."""
        record_finish_check(trajectory, problem)
        step = len(trajectory.steps)
        trajectory.append(TrajectoryStep(action, error=problem.message))
        fields = {"step": step, "check": problem.kind, "tool": problem.tool}
        logger.info(LogLine("finish_rejected"), fields, extra=fields)
        events = self._events
        if events.listening():
            events.emit(
                PlannerEvent(
                    "finish_rejected",
                    ts=events.time_source(),
                    trajectory_step=step,
                    thought=action.thought,
                    node_name=problem.tool,
                    error=problem.message,
                    extra={"check": problem.kind},
                )
            )

    def _begin_run(
        self,
        trajectory: Trajectory,
        resumed: Mapping[str, Any] | None,
        user_input: str | None,
    ) -> RunState:
        """The run's id, ledger and (when a span sink is attached) its spans."""
        info = resumed or {}
        run_id = str(info.get("run_id") or new_id())
        ledger = Ledger(
            usage=Usage.from_dict(info.get("usage")),
            parent=current_ledger.get(),
            cost_budget_usd=self._cost_budget_usd,
            hop_budget=self._rules.hop_budget,
        )
        trace = None
        if self._spans:
            trace = RunTrace.begin(
                self._spans,
                run_id=run_id,
                query=trajectory.query,
                steps=trajectory.steps,
                attributes={
                    "max_iters": self._max_iters,
                    "hop_budget": self._rules.hop_budget,
                    "cost_budget_usd": self._cost_budget_usd,
                },
                resumed=info.get("trace") if resumed is not None else None,
                user_input=user_input,
            )
            run_id = trace.root.run_id
        return RunState(run_id, ledger, trace)

    def _run_info(self, run: RunState) -> dict[str, Any]:
        """What a pause record keeps of the run (its id, usage and trace)."""
        info: dict[str, Any] = {"run_id": run.run_id, "usage": run.ledger.usage.to_dict()}
        if run.trace is not None:
            info["trace"] = run.trace.resume_info()
        return info

    async def _record_run_pause(
        self, pause: PlannerPause, trajectory: Trajectory, tracker: ConstraintTracker
    ) -> None:
        """The run stops at a pause: close its spans, then store the record."""
        run = self._active_run
        if run is None:
            await self._pauses.record(pause, trajectory, tracker)
            return
        run.close_segment()
        if run.trace is not None:
            run.trace.pause(pause.reason, pause.payload, run.ledger)
        await self._pauses.record(pause, trajectory, tracker, self._run_info(run))

    async def _execute_parallel_plan(
        self, action: PlannerAction, trajectory: Trajectory, tracker: ConstraintTracker
    ) -> tuple[Any, PlannerPause | None]:
        observation, pause = await run_parallel_plan(
            self._tools, action, trajectory, tracker, self._new_context
        )
        if pause is not None:
            await self._record_run_pause(pause, trajectory, tracker)
        return observation, pause

    def _new_context(self, trajectory: Trajectory) -> PlannerContext:
        return PlannerContext(self, trajectory, self._active_run)

    def _finish(
        self,
        trajectory: Trajectory,
        *,
        reason: str,
        payload: Any,
        thought: str,
        constraints: ConstraintTracker | None = None,
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
        run = self._active_run
        if run is not None:
            run.close_segment()
            metadata["usage"] = run.ledger.usage.to_dict()
            metadata["run_id"] = run.run_id
            if run.trace is not None:
                attributes: dict[str, Any] = {
                    "reason": reason,
                    "answer": RunTrace.answer_text(payload),
                }
                if constraints is not None:
                    attributes["hops_used"] = constraints.hops_used
                run.trace.end(
                    "ok",
                    ledger=run.ledger,
                    attributes=attributes,
                )
        extra: dict[str, Any] = {"reason": reason}
        if error is not None:
            metadata["error"] = error
            extra["error"] = error
        self._events.emit_now("finish", len(trajectory.steps), thought=thought, extra=extra)
        # DEBUG: at INFO the `finish` event just logged says the same.
        if logger.isEnabledFor(logging.DEBUG):
            done = {"reason": reason, "step_count": len(trajectory.steps), "thought": thought}
            logger.debug(LogLine("planner_finish"), done, extra=done)
        return PlannerFinish(reason=reason, payload=payload, metadata=metadata)  # type: ignore[arg-type]

    # -- compatibility: the reference implementation's private names ------------------
    #
    # Code written against the reference's internals (docs/compatibility.md) reads,
    # sets or calls these. Each one delegates to the part that owns the behaviour now;
    # nothing in this package uses them.

    _specs: _Alias[list[NodeSpec]] = _Alias("_tools", "specs")
    _spec_by_name: _Alias[dict[str, NodeSpec]] = _Alias("_tools", "by_name")
    _planning_hints: _Alias[PlanningHints] = _Alias("_rules", "hints")
    _hop_budget: _Alias[int | None] = _Alias("_rules", "hop_budget")
    _absolute_max_parallel: _Alias[int] = _Alias("_rules", "absolute_max_parallel")
    _system_prompt: _Alias[str] = _Alias("_conversation", "system_prompt")
    _token_budget: _Alias[int | None] = _Alias("_conversation", "token_budget")
    _client: _Alias[JSONLLMClient] = _Alias("_llm", "client")
    _summarizer_client: _Alias[JSONLLMClient | None] = _Alias("_llm", "summarizer")
    _json_schema_mode: _Alias[bool] = _Alias("_llm", "json_schema_mode")
    _action_schema: _Alias[dict[str, Any]] = _Alias("_llm", "action_schema")
    _response_format: _Alias[dict[str, Any] | None] = _Alias("_llm", "response_format")
    _pause_enabled: _Alias[bool] = _Alias("_pauses", "enabled")
    _state_store: _Alias[Any] = _Alias("_pauses", "state_store")
    _pause_records: _Alias[dict[str, PauseRecord]] = _Alias("_pauses", "records")
    _time_source: _Alias[Callable[[], float]] = _Alias("_events", "time_source")
    _event_callback: _Alias[PlannerEventCallback | None] = _Alias("_events", "callback")

    async def _run_parallel_branch(
        self, spec: NodeSpec, args: BaseModel, ctx: PlannerContext
    ) -> ToolOutcome:
        return await self._tools.invoke(spec, args, ctx)

    async def _build_messages(self, trajectory: Trajectory) -> list[dict[str, str]]:
        conversation = self._conversation
        return await conversation.fit(trajectory, conversation.history(trajectory))

    def _estimate_size(self, messages: Sequence[Mapping[str, str]]) -> int:
        return estimate_size(messages)

    async def _summarise_trajectory(self, trajectory: Trajectory) -> TrajectorySummary:
        return await self._conversation.summarise(trajectory)

    def _check_action_constraints(
        self, action: PlannerAction, trajectory: Trajectory, tracker: ConstraintTracker
    ) -> str | None:
        return self._rules.check(action, trajectory, tracker)

    def _record_hint_progress(self, node_name: str, trajectory: Trajectory) -> None:
        self._rules.record_progress(node_name, trajectory)

    def _build_failure_payload(
        self, spec: NodeSpec, args: BaseModel, exc: Exception
    ) -> dict[str, Any]:
        return failure_payload(spec, args, exc)

    async def _pause_from_context(
        self,
        reason: PlannerPauseReason,
        payload: Mapping[str, Any] | None,
        trajectory: Trajectory,
    ) -> PlannerPause:
        return await PlannerContext(self, trajectory).pause(reason, payload)

    async def _record_pause(
        self, pause: PlannerPause, trajectory: Trajectory, tracker: ConstraintTracker | None
    ) -> None:
        await self._pauses.record(pause, trajectory, tracker)

    async def _store_pause_record(self, token: str, record: PauseRecord) -> None:
        await self._pauses.store(token, record)

    async def _load_pause_record(self, token: str) -> PauseRecord:
        return await self._pauses.load(token)

    def _serialise_pause_record(self, record: PauseRecord) -> dict[str, Any]:
        return record.to_payload()

    def _emit_event(self, event: PlannerEvent) -> None:
        self._events.emit(event)


def _litellm_client(
    llm: str | Mapping[str, Any],
    temperature: float,
    json_schema_mode: bool,
    max_retries: int,
    timeout_s: float,
) -> JSONLLMClient:
    from .clients._litellm import _LiteLLMJSONClient

    return _LiteLLMJSONClient(
        llm,
        temperature=temperature,
        json_schema_mode=json_schema_mode,
        max_retries=max_retries,
        timeout_s=timeout_s,
    )


def _action_kind(action: PlannerAction) -> str:
    if action.plan:
        return "parallel"
    return "finish" if action.next_node is None else "tool"


def _dumped(observation: Any) -> Any:
    """A finish payload from the last observation: a tool's output model as JSON data."""
    if isinstance(observation, BaseModel):
        return dump_json(observation)
    return observation


def _failed_step(
    trajectory: Trajectory,
    action: PlannerAction,
    error: str | None,
    failure: Mapping[str, Any] | None = None,
) -> None:
    """Record a failed tool step; its error names a call that already failed alike."""
    if error is not None:
        error = repeated_failure(trajectory, action, error)
    trajectory.append(TrajectoryStep(action, error=error, failure=failure))


_REPLY_SHOWN_CHARS = 2000


def _reply_text(raw: Any) -> str:
    """An invalid reply as the repair conversation shows it (long ones cut)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if len(text) > _REPLY_SHOWN_CHARS:
        text = f"{text[:_REPLY_SHOWN_CHARS]}… [{len(text) - _REPLY_SHOWN_CHARS} more characters]"
    return text


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


# -- compatibility: the reference implementation's module-level private names ---------
# Kept for code written against its internals (docs/compatibility.md); each names the
# part that owns the behaviour now. `_LiteLLMJSONClient` loads on first access.

_ConstraintTracker = ConstraintTracker
_PlanningHints = PlanningHints
_PauseRecord = PauseRecord
_PlannerPauseSignal = PauseSignal
_PlannerContext = PlannerContext
_BranchExecutionResult = ToolOutcome


def __getattr__(name: str) -> Any:
    if name == "_LiteLLMJSONClient":
        from .clients._litellm import _LiteLLMJSONClient

        return _LiteLLMJSONClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _typed_by_hints(nodes: Sequence[Any]) -> bool:
    """Whether every node (or `async def` tool) names its models in its type hints, so
    no registry is needed to describe it."""
    for item in nodes:
        node = item if isinstance(item, Node) else None
        if node is None:
            if not inspect.iscoroutinefunction(item):
                return False
            node = Node(item)
        hinted = node.hinted_models()
        if hinted is None or hinted.in_model is None or hinted.out_model is None:
            return False
    return True
