"""`penguiflow run` and `penguiflow resume`: a planner run, shown live and recorded."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from ._display import LiveDisplay, cost, duration, number, text_of
from ._errors import USAGE, fail
from ._load import build, load_attribute
from ._store import STORE_HELP, opened

if TYPE_CHECKING:
    from rich.console import Console

    from ..planner import PlannerFinish, PlannerPause, ReactPlanner

FACTORY_HELP = (
    "MODULE:FACTORY naming a ReactPlanner, or a zero-argument function (sync or async) "
    "returning one"
)
RESUME_NOTE = (
    "Cross-process resume: the pause is kept by the planner's own state store, so FACTORY "
    "must build its ReactPlanner with state_store=... (a durable store both processes "
    "reach, e.g. penguiflow.state.open_store(penguiflow.state.store_url()): "
    "$PENGUIFLOW_STORE, else .penguiflow/state.db). --store only says where spans are "
    "recorded; nothing is set on the planner for you."
)


def add_commands(commands: Any) -> None:
    """Add `run` and `resume` to the subcommands."""
    run = commands.add_parser(
        "run",
        help="run a planner on a query, showing each step live, and record the run",
        description="Run a ReactPlanner on a query, show each step, LLM call and tool call "
        "as it happens, and record the run's spans in the store. " + RESUME_NOTE,
    )
    run.add_argument("factory", metavar="MODULE:FACTORY", help=FACTORY_HELP)
    run.add_argument("query", help="the query to plan for")
    _common(run)
    run.set_defaults(handler=_run)

    resume = commands.add_parser(
        "resume",
        help="resume a paused planner run (same display as run)",
        description="Resume a paused run with its resume token. " + RESUME_NOTE,
    )
    resume.add_argument("token", metavar="TOKEN", help="the resume token the pause printed")
    resume.add_argument(
        "--input", dest="user_input", metavar="TEXT", help="text given to the resumed run"
    )
    resume.add_argument("--planner", required=True, metavar="MODULE:FACTORY", help=FACTORY_HELP)
    _common(resume)
    resume.set_defaults(handler=_resume)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    parser.add_argument(
        "--no-content",
        action="store_true",
        help="record timings and usage only, not messages, tool arguments and results",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object at the end, nothing live"
    )


async def _run(args: argparse.Namespace, console: Console) -> int:
    check_query(args.query)
    return await _drive(args, console, args.factory, lambda p: p.run(args.query))


async def _resume(args: argparse.Namespace, console: Console) -> int:
    from ..planner.errors import ResumeError
    from ..state.errors import ResumeTokenError

    async def go(planner: ReactPlanner) -> PlannerFinish | PlannerPause:
        try:
            return await planner.resume(args.token, user_input=args.user_input)
        except (ResumeError, ResumeTokenError) as exc:
            raise fail(
                f"no paused run for resume token {args.token[:12]}... (unknown, already "
                "resumed, or not saved)",
                f"check the token; the planner {args.planner} builds must have a state_store "
                "shared with the process that paused",
            ) from exc

    return await _drive(args, console, args.planner, go)


async def _drive(args: argparse.Namespace, console: Console, spec: str, go: Any) -> int:
    from ..planner import PlannerPause, ReactPlanner

    planner = await build(spec, load_attribute(spec), ReactPlanner, "a ReactPlanner")
    from ..tracing.recorder import Recorder

    live = LiveDisplay(None if args.json else console)
    async with opened(args.store, create=True) as store:
        # A store that cannot be reached is said now, not as spans dropped after the run.
        await store.list_runs(limit=1)
        recorder = Recorder(store, capture_content=not args.no_content)
        recorder.attach(planner)
        planner.hooks.span.append(live)
        planner.hooks.event.append(live.event)
        try:
            result = await go(planner)
        finally:
            planner.hooks.event.remove(live.event)
            planner.hooks.span.remove(live)
            recorder.detach(planner)
            await recorder.flush()
            await recorder.aclose()
        dropped = recorder.dropped
    if isinstance(result, PlannerPause):
        run_id = live.run_id
    else:
        run_id = result.metadata.get("run_id") or live.run_id
    if args.json:
        print(json.dumps(_as_json(result, run_id, dropped), default=str, sort_keys=True))
        return 0
    _print_outcome(console, result, run_id, dropped, spec)
    return 0


def _as_json(result: PlannerFinish | PlannerPause, run_id: str | None, dropped: int) -> Any:
    from ..planner import PlannerPause

    data: dict[str, Any] = {"run_id": run_id, "dropped_spans": dropped}
    if isinstance(result, PlannerPause):
        data.update(
            status="paused",
            reason=result.reason,
            payload=result.payload,
            resume_token=result.resume_token,
        )
    else:
        data.update(
            status="finished",
            reason=result.reason,
            answer=result.payload,
            usage=result.metadata.get("usage"),
        )
    return data


def _print_outcome(
    console: Console,
    result: PlannerFinish | PlannerPause,
    run_id: str | None,
    dropped: int,
    spec: str,
) -> None:
    from rich.markup import escape

    from ..planner import PlannerPause

    console.print()
    if isinstance(result, PlannerPause):
        console.print(f"[bold yellow]paused[/] ({escape(result.reason)})")
        if result.payload:
            console.print(escape(text_of(result.payload)), highlight=False)
        console.print(f"resume token: {result.resume_token}", highlight=False)
        console.print(
            f"continue with: penguiflow resume {result.resume_token} --planner {spec} "
            '--input "..."',
            highlight=False,
        )
    else:
        console.print(f"[bold green]answer[/] ({result.reason})")
        console.print(escape(text_of(result.payload)), highlight=False)
        usage = result.metadata.get("usage")
        if isinstance(usage, dict):
            console.print(
                f"usage: {number(usage.get('llm_calls'))} LLM calls, "
                f"{number(usage.get('prompt_tokens'))}+{number(usage.get('completion_tokens'))}"
                f" = {number(usage.get('total_tokens'))} tokens, "
                f"{cost(usage.get('cost_usd'), usage.get('unpriced_calls'))}, "
                f"{number(usage.get('tool_calls'))} tool calls, "
                f"{duration(usage.get('wall_ms'))}",
                highlight=False,
            )
    if dropped:
        console.print(
            f"[bold red]warning:[/] {dropped} spans were dropped (the store was too slow or "
            "failed); the recorded run is incomplete",
        )
    if run_id is not None:
        console.print(f"run {run_id}: penguiflow trace view {run_id}", highlight=False)


def check_query(query: str) -> None:
    """A user error for an empty query."""
    if not query.strip():
        raise fail("the query is empty", 'pass the question, e.g. "What is 2+2?"', code=USAGE)
