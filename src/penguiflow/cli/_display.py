"""What `run` and `resume` show while the planner works, and the small formats shared
by the commands (durations, costs, times)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from ..planner.models import PlannerEvent
    from ..spans import Span


def duration(ms: float | None) -> str:
    """`850 ms`, `2.4 s`, `3m05s`; `-` when unknown."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(int(ms / 1000), 60)
    return f"{minutes}m{seconds:02d}s"


def cost(usd: Any, unpriced: Any = 0) -> str:
    """`$0.0012`; `-` when unknown (or when every call was unpriced: `unpriced` of
    `calls`, given as a pair)."""
    if not isinstance(usd, int | float) or isinstance(usd, bool):
        return "-"
    if usd == 0 and isinstance(unpriced, int) and unpriced > 0:
        return "-"
    return f"${usd:.4f}" if usd < 1 else f"${usd:.2f}"


def number(value: Any) -> str:
    """An int attribute, or `-`."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "-"


def when(seconds: float) -> str:
    """Local time of a span start, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def text_of(value: Any) -> str:
    """A payload as text: strings as they are, anything else as indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def status_style(status: str) -> str:
    """The rich style of a status."""
    return {"ok": "green", "error": "bold red", "paused": "yellow", "running": "cyan"}.get(
        status, "magenta"
    )


def span_line(span: Span) -> str:
    """One line of rich markup describing a finished span (no escaping of brackets
    needed: the caller escapes the names)."""
    from rich.markup import escape

    attrs = span.attributes
    style = status_style(span.status)
    status = f"[{style}]{span.status}[/]"
    took = duration(attrs.get("latency_ms") or span.duration_ms)
    if span.kind == "llm":
        prompt, completion = attrs.get("prompt_tokens"), attrs.get("completion_tokens")
        tokens = (
            f"{number(prompt)}+{number(completion)} tokens"
            if isinstance(prompt, int) or isinstance(completion, int)
            else "tokens not reported"
        )
        repair = f"  attempt {span.attempt}" if span.attempt > 1 else ""
        return (
            f"  [blue]llm[/] {escape(str(attrs.get('model') or span.name))}  "
            f"{tokens}  {cost(attrs.get('cost_usd'))}  {took}  {status}{repair}"
        )
    if span.kind in ("tool", "join"):
        branch = f" #{attrs['branch']}" if "branch" in attrs else ""
        error = ""
        if span.status == "error":
            error = f"  {escape(span.error_type or '')}: {escape(span.error_message or '')}"
        return f"  [cyan]{span.kind}[/] {escape(span.name)}{branch}  {took}  {status}{error}"
    if span.kind == "pause":
        return f"  [yellow]pause[/]  {escape(str(attrs.get('reason') or span.name))}"
    return f"  {span.kind} {escape(span.name)}  {took}  {status}"


class LiveDisplay:
    """A `SpanSink` printing the run as it happens: each step, LLM call and tool call,
    and (as the planner's `event` hook) the final answer while it is written.

    Also notes the run id (its root span's) for the summary printed at the end.
    """

    def __init__(self, console: Console | None) -> None:
        self.console = console
        self.run_id: str | None = None
        self._answering = False  # a streamed answer is being printed, mid-line

    def event(self, event: PlannerEvent) -> None:
        """Print a streamed answer (`llm_stream_chunk` events) as it arrives."""
        console = self.console
        if console is None or event.event_type != "llm_stream_chunk":
            return
        extra = event.extra
        if not self._answering and not extra.get("done"):
            console.print("  [green]answer[/] ", end="")
            self._answering = True
        text = str(extra.get("text") or "")
        if text:
            console.out(text, end="", highlight=False)
            console.file.flush()
        if extra.get("done"):
            self._end_answer()
            if extra.get("discarded"):
                console.print("  [yellow](the planner did not take this answer)[/]")

    def _end_answer(self) -> None:
        if self._answering and self.console is not None:
            self.console.print()
        self._answering = False

    def span_started(self, span: Span) -> None:
        """Note the run id; announce steps and resumes."""
        from rich.markup import escape

        if span.parent_id is None and self.run_id is None:
            self.run_id = span.run_id
        if self.console is None:
            return
        if span.kind == "step":
            self.console.print(f"[bold]{escape(span.name)}[/]")
        elif span.kind == "resume":
            self.console.print("[bold]resumed[/]")

    def span_ended(self, span: Span) -> None:
        """Print finished LLM calls, tool calls, joins, summaries and pauses."""
        if self.console is None or span.kind in ("run", "trace", "step", "resume"):
            return
        self._end_answer()
        self.console.print(span_line(span), highlight=False)
