"""Log lines a person can read: a plain `logging.Formatter` shows each event's fields.

What `logging.basicConfig(level=logging.INFO)` users see, while the message still
equals the event name and the structured `extra` fields stay on every record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.handlers
import pickle
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from penguiflow import (
    FlowError,
    Headers,
    Message,
    ModelRegistry,
    Node,
    NodePolicy,
    PenguiFlow,
    build_catalog,
    create,
)
from penguiflow.planner import PlannerFinish, PlannerPause, ReactPlanner
from penguiflow.testkit import ScriptedLLMClient


class Lines(logging.Handler):
    """Formats every record the way `basicConfig` does and keeps both."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))

    def of(self, event: str) -> list[str]:
        """The formatted lines of one event (the text may hold a traceback)."""
        return [line for r, line in zip(self.records, self.lines) if r.getMessage() == event]

    def counts(self) -> Counter[str]:
        return Counter(r.getMessage() for r in self.records)


@pytest.fixture
def lines() -> Iterator[Lines]:
    """Capture `penguiflow.*` at INFO, like `logging.basicConfig(level=logging.INFO)`."""
    handler = Lines()
    root = logging.getLogger("penguiflow")
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def without_numbers(line: str) -> str:
    """The line with measured values (latencies, backoff sleeps) replaced by `#`."""
    return re.sub(r"(latency_ms|sleep_s)=[\d.e+-]+", r"\1=#", line)


def message(payload: Any) -> Message:
    return Message(payload=payload, headers=Headers(tenant="acme"))


# -- flows ---------------------------------------------------------------------------


async def test_each_node_success_is_one_line_with_node_trace_and_latency(lines: Lines) -> None:
    async def triage(msg: Message, ctx: Any) -> Message:
        return msg

    async def answer(msg: Message, ctx: Any) -> Message:
        return msg

    a, b = Node(triage, name="triage"), Node(answer, name="answer")
    flow = create(a.to(b), b.to())
    flow.run()
    try:
        sent = [message(1), message(2)]
        for m in sent:
            await flow.emit(m)
        for _ in sent:
            await flow.fetch()
    finally:
        await flow.stop()

    successes = lines.of("node_success")
    assert len(successes) == 4  # one per node invocation, not one per logger
    pattern = (
        r"INFO:penguiflow\.core:node_success node=(\w+) trace=(\w+) attempt=0 latency_ms=\d+\.\d"
    )
    seen = sorted(re.fullmatch(pattern, line).groups() for line in successes)  # type: ignore[union-attr]
    assert seen == sorted((node, m.trace_id) for m in sent for node in ("triage", "answer"))
    assert set(lines.counts()) == {"node_success"}  # node_start is DEBUG


async def test_a_failing_node_names_its_error_and_its_traceback_is_shown_once(
    lines: Lines,
) -> None:
    async def fetch(msg: Message, ctx: Any) -> Message:
        raise ValueError("boom")

    node = Node(fetch, name="fetch", policy=NodePolicy(max_retries=1, backoff_base=0.01))
    flow = create(node.to())
    failed: asyncio.Queue[FlowError] = asyncio.Queue()
    flow.hooks.node_failed.append(failed.put_nowait)
    flow.run()
    try:
        sent = message("x")
        await flow.emit(sent)
        await asyncio.wait_for(failed.get(), 5)
    finally:
        await flow.stop()

    trace = sent.trace_id
    first_lines = [without_numbers(line.splitlines()[0]) for line in lines.lines]
    assert first_lines == [
        f"ERROR:penguiflow.core:node_error node=fetch trace={trace} attempt=0 latency_ms=# "
        'error="ValueError: boom"',
        f"INFO:penguiflow.core:node_retry node=fetch trace={trace} attempt=1 sleep_s=# "
        "error=ValueError('boom')",
        f"ERROR:penguiflow.core:node_error node=fetch trace={trace} attempt=1 latency_ms=# "
        'error="ValueError: boom"',
        f"ERROR:penguiflow.core:node_failed node=fetch trace={trace} attempt=1 latency_ms=# "
        'code=NODE_EXCEPTION error="ValueError: boom"',
    ]
    # One traceback per failed attempt: the final `node_failed` does not repeat it.
    assert "\n".join(lines.lines).count("Traceback (most recent call last)") == 2
    assert lines.counts() == Counter({"node_error": 2, "node_retry": 1, "node_failed": 1})


@pytest.mark.parametrize("emit_errors", [False, True])
async def test_a_failure_nobody_receives_says_so_and_names_the_option(
    lines: Lines, emit_errors: bool
) -> None:
    async def fetch(msg: Message, ctx: Any) -> Message:
        raise ValueError("boom")

    flow = create(Node(fetch, name="fetch").to(), emit_errors_to_rookery=emit_errors)
    flow.run()
    try:
        sent = message("x")
        await flow.emit(sent)
        if emit_errors:
            error = await asyncio.wait_for(flow.fetch(), 5)
            assert isinstance(error, FlowError)
        else:
            while not flow.trace_status(sent.trace_id).done:
                await asyncio.sleep(0.01)
    finally:
        await flow.stop()
    (failed,) = [line for line in lines.lines if "node_failed" in line]
    hint = 'undelivered="no result for fetch(); emit_errors_to_rookery=True sends it this error"'

    assert (hint in failed) is not emit_errors


async def test_records_keep_the_event_name_as_message_and_the_payload_as_extra(
    lines: Lines,
) -> None:
    async def triage(msg: Message, ctx: Any) -> Message:
        return msg

    flow: PenguiFlow = create(Node(triage, name="triage").to())
    flow.run()
    try:
        sent = message(1)
        await flow.emit(sent)
        await flow.fetch()
    finally:
        await flow.stop()

    (record,) = lines.records
    assert record.msg == record.getMessage() == "node_success"
    fields = {key: getattr(record, key) for key in ("event", "node_name", "trace_id", "attempt")}
    assert fields == {
        "event": "node_success",
        "node_name": "triage",
        "trace_id": sent.trace_id,
        "attempt": 0,
    }
    assert isinstance(record.latency_ms, float)  # type: ignore[attr-defined]
    # A JSON handler serialising the message writes the bare event name, as before.
    assert json.dumps({"message": record.getMessage()}) == '{"message": "node_success"}'
    # Pickled for another process (as `SocketHandler` does), the message is the line.
    shipped = pickle.loads(logging.handlers.SocketHandler("", 0).makePickle(record)[4:])
    assert type(shipped["msg"]) is str
    assert shipped["msg"] == lines.lines[0].split(":", 2)[2]


async def test_nothing_is_rendered_when_the_level_is_off() -> None:
    class Probe:
        """A field value that records whether anyone turned it into text."""

        rendered = False

        def __repr__(self) -> str:
            Probe.rendered = True
            return "probe"

    async def triage(msg: Message, ctx: Any) -> Message:
        return msg

    node = Node(triage, name="triage")
    flow = create(node.to())
    core = logging.getLogger("penguiflow.core")
    level = core.level
    core.setLevel(logging.WARNING)
    try:
        await flow.record_remote_event(
            event="remote_call_start",
            node=node,
            context=flow.contexts[node],
            trace_id="t",
            latency_ms=0.0,
            extra={"probe": Probe()},
        )
        assert not Probe.rendered
        core.setLevel(logging.INFO)
        handler = Lines()
        core.addHandler(handler)
        try:
            await flow.record_remote_event(
                event="remote_call_start",
                node=node,
                context=flow.contexts[node],
                trace_id="t",
                latency_ms=0.0,
                extra={"probe": Probe()},
            )
        finally:
            core.removeHandler(handler)
        assert Probe.rendered
        assert handler.lines == [
            "INFO:penguiflow.core:remote_call_start node=triage trace=t attempt=0 "
            "latency_ms=0.0 probe=probe"
        ]
    finally:
        core.setLevel(level)


# -- the planner ---------------------------------------------------------------------


class Question(BaseModel):
    text: str


class Intent(BaseModel):
    intent: str


def catalog() -> list[Any]:
    async def triage(args: Question, ctx: Any) -> Intent:
        return Intent(intent="docs")

    async def approve(args: Question, ctx: Any) -> Intent:
        await ctx.pause("approval_required", {"text": args.text})
        raise AssertionError("pause() never returns")

    registry = ModelRegistry()
    registry.register("triage", Question, Intent)
    registry.register("approve", Question, Intent)
    return build_catalog([Node(triage, name="triage"), Node(approve, name="approve")], registry)


def act(thought: str, **fields: Any) -> str:
    return json.dumps({"thought": thought, **fields})


async def test_a_planner_run_logs_steps_nodes_latency_and_the_finish_reason(
    lines: Lines,
) -> None:
    long_query = "How do I " + "really " * 20 + "ship?"
    llm = ScriptedLLMClient(
        [
            act("route it", next_node="triage", args={"text": "How?"}),
            act("done", next_node=None, args={"answer": "ship it"}),
        ]
    )
    result = await ReactPlanner(llm_client=llm, catalog=catalog()).run(long_query)
    assert isinstance(result, PlannerFinish)

    shown = long_query[:79] + "…"
    planner_lines = [
        without_numbers(line) for line in lines.lines if ":penguiflow.planner:" in line
    ]
    assert planner_lines == [
        f'INFO:penguiflow.planner:planner_run_start query="{shown}"',
        "INFO:penguiflow.planner:step_start step=0",
        "INFO:penguiflow.planner:llm_call step=0 latency_ms=# attempt=1 purpose=action",
        "INFO:penguiflow.planner:planner_action step=0 next_node=triage has_plan=False "
        'thought="route it"',
        'INFO:penguiflow.planner:step_complete step=0 node=triage latency_ms=# thought="route it"',
        "INFO:penguiflow.planner:step_start step=1",
        "INFO:penguiflow.planner:llm_call step=1 latency_ms=# attempt=1 purpose=action",
        "INFO:penguiflow.planner:planner_action step=1 has_plan=False thought=done",
        "INFO:penguiflow.planner:finish step=1 reason=answer_complete thought=done",
    ]
    # Each happening is logged once: the `finish` event is the one finish line at INFO.
    assert max(lines.counts().values()) == 2  # two steps, two of each per-step event
    assert lines.counts()["finish"] == 1
    assert "planner_finish" not in lines.counts()
    finish = next(r for r in lines.records if r.getMessage() == "finish")
    assert (finish.step, finish.reason, finish.thought) == (1, "answer_complete", "done")  # type: ignore[attr-defined]
    query = next(r for r in lines.records if r.getMessage() == "planner_run_start")
    assert query.query == long_query  # type: ignore[attr-defined]  # extra is not cut


async def test_a_resume_line_never_shows_the_whole_token(lines: Lines) -> None:
    llm = ScriptedLLMClient(
        [
            act("needs approval", next_node="approve", args={"text": "ship it"}),
            act("approved", next_node=None, args={"shipped": True}),
        ]
    )
    planner = ReactPlanner(llm_client=llm, catalog=catalog())
    paused = await planner.run("ship")
    assert isinstance(paused, PlannerPause)
    result = await planner.resume(paused.resume_token, user_input="approved")
    assert isinstance(result, PlannerFinish)

    token = paused.resume_token
    assert lines.of("planner_resume") == [
        f"INFO:penguiflow.planner:planner_resume token={token[:8]}..."
    ]
    assert all(token not in line for line in lines.lines)
    assert lines.of("resume") == ["INFO:penguiflow.planner:resume step=1 user_input=approved"]


async def test_a_failing_pause_store_is_one_readable_error_line(lines: Lines) -> None:
    class Broken:
        def save_planner_state(self, token: str, payload: dict[str, Any]) -> None:
            raise OSError("disk full at postgres://app:hunter2@db/planner")

    llm = ScriptedLLMClient([act("needs approval", next_node="approve", args={"text": "x"})])
    paused = await ReactPlanner(llm_client=llm, catalog=catalog(), state_store=Broken()).run("ship")
    assert isinstance(paused, PlannerPause)
    token = paused.resume_token
    assert lines.of("state_store_save_failed") == [
        f"ERROR:penguiflow.planner:state_store_save_failed token={token[:8]}... "
        'error_type=OSError error="disk full at postgres://***@db/planner"'
    ]
    (record,) = (r for r in lines.records if r.getMessage() == "state_store_save_failed")
    assert record.error_type == "OSError"  # type: ignore[attr-defined]
