"""The real-model benchmark's tasks and checkers, driven by scripted replies (no model).

A right answer passes each checker and a wrong one (a premature finish, a wrong
number, a tool where none was needed, wrong arguments) fails it, through the same
`run_task` path the benchmark uses with a real model.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from penguiflow.planner import ReactPlanner
from penguiflow.testkit import ScriptedLLMClient

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench" / "real_model"


@pytest.fixture(scope="module")
def bench() -> Iterator[dict[str, ModuleType]]:
    sys.path.insert(0, str(BENCH_DIR))
    try:
        yield {name: importlib.import_module(name) for name in ("tasks", "measure", "report")}
    finally:
        sys.path.remove(str(BENCH_DIR))


def act(next_node: str | None, args: Mapping[str, Any] | None = None, **extra: Any) -> str:
    import json

    return json.dumps({"thought": "t", "next_node": next_node, "args": args, **extra})


def finish(answer: str) -> str:
    return act(None, {"answer": answer})


async def run(bench: dict[str, ModuleType], name: str, replies: list[Any]) -> Any:
    tasks, measure = bench["tasks"], bench["measure"]
    (task,) = tasks.select_tasks(name)
    world, catalog = tasks.build_world_catalog()
    recorder = measure.Recorder()
    planner = ReactPlanner(
        llm_client=ScriptedLLMClient(replies),
        catalog=catalog,
        max_iters=8,
        event_callback=recorder,
    )
    return await measure.run_task(planner, task, world, recorder, 30.0)


async def test_chain_right_answer_passes(bench: dict[str, ModuleType]) -> None:
    result = await run(
        bench,
        "employee_budget",
        [
            act("get_employee", {"name": "Alice Moreau"}),
            act("get_department", {"department": "Research"}),
            finish("The Research department has a budget of 480,000 EUR."),
        ],
    )
    assert result.success, result.failure
    assert result.steps == 2  # the planner's step_count: tool steps, not the finish
    assert result.llm_calls == 3
    assert result.invalid_replies == 0
    assert [c["tool"] for c in result.tool_calls] == ["get_employee", "get_department"]


def check(bench: dict[str, ModuleType], name: str, payload: Any, *calls: Any, **kw: Any) -> Any:
    """The task's checker on a finished run (no planner: the checker alone)."""
    tasks = bench["tasks"]
    (task,) = tasks.select_tasks(name)
    made = [tasks.Call(tool, args) for tool, args in calls]
    return task.check(tasks.Outcome(kw.pop("reason", "answer_complete"), payload, made, **kw))


def test_premature_finish_with_tool_args_fails(bench: dict[str, ModuleType]) -> None:
    failure = check(bench, "employee_budget", {"name": "Alice Moreau"})
    assert failure is not None
    assert "480000" in failure


def test_wrong_number_fails(bench: dict[str, ModuleType]) -> None:
    calls = [("get_stock", {"sku": "A-100"}), ("get_stock", {"sku": "B-200"})]
    assert check(bench, "stock_total", {"answer": "95 units in total"}, *calls) is None
    failure = check(bench, "stock_total", {"answer": "There are 94 units."}, *calls)
    assert failure is not None
    assert "lacks 95" in failure


def test_right_text_without_the_tool_call_fails(bench: dict[str, ModuleType]) -> None:
    failure = check(bench, "stock_total", {"answer": "95 units in total"})
    assert failure is not None
    assert "no get_stock call" in failure


def test_iteration_limit_fails_even_with_the_answer(bench: dict[str, ModuleType]) -> None:
    failure = check(bench, "capital_no_tool", {"answer": "Paris"}, reason="no_path")
    assert failure is not None
    assert "no_path" in failure


async def test_parallel_plan_passes(bench: dict[str, ModuleType]) -> None:
    plan = [
        {"node": "get_weather", "args": {"city": city, "day": "2025-03-14"}}
        for city in ("Oslo", "Madrid")
    ]
    result = await run(
        bench,
        "weather_compare",
        [
            act(None, None, plan=plan),
            finish("Madrid is warmer by 16 degrees (19 vs 3)."),
        ],
    )
    assert result.success, result.failure


async def test_flaky_tool_needs_the_retry(bench: dict[str, ModuleType]) -> None:
    call = act("get_shipment", {"tracking_code": "ZX-9981"})
    retried = await run(bench, "shipment_retry", [call, call, finish("At the Lyon sorting hub.")])
    assert retried.success, retried.failure
    assert retried.error_steps == 1
    assert [c["failed"] for c in retried.tool_calls] == [True, False]
    guessed = await run(bench, "shipment_retry", [call, finish("Probably in Lyon.")])
    assert not guessed.success
    assert "get_shipment called 1 times" in guessed.failure


async def test_no_tool_task_refuses_a_tool_call(bench: dict[str, ModuleType]) -> None:
    right = await run(bench, "capital_no_tool", [finish("Paris.")])
    assert right.success, right.failure
    assert right.tool_calls == []
    failure = check(bench, "capital_no_tool", "Paris", ("search_docs", {"query": "France"}))
    assert failure is not None
    assert "needing no tool" in failure


def test_argument_types_are_checked(bench: dict[str, ModuleType]) -> None:
    meeting = {
        "attendees": ["Bruno Lind", "Alice Moreau"],  # any order
        "day": "2025-04-02",
        "duration_minutes": 45,
        "room": "orion",
    }
    answer = {"answer": "Booked: MTG-0402-ORION-45."}
    assert check(bench, "book_meeting", answer, ("schedule_meeting", meeting)) is None
    for key, wrong in (
        ("room", "vega"),
        ("day", "2025-02-04"),
        ("duration_minutes", 30),
        ("attendees", ["Alice Moreau"]),
    ):
        failure = check(
            bench, "book_meeting", answer, ("schedule_meeting", {**meeting, key: wrong})
        )
        assert failure is not None, key
        assert "no schedule_meeting call" in failure


async def test_pause_is_resumed_with_the_approval(bench: dict[str, ModuleType]) -> None:
    replies = [
        act(
            "request_refund_approval",
            {"order_id": 1042, "amount_eur": 25.5, "reason": "late_delivery"},
        ),
        act("issue_refund", {"order_id": 1042, "amount_eur": 25.5, "approval_code": "AP-553"}),
        finish("Refund RF-1042-553 issued."),
    ]
    result = await run(bench, "refund_approval", replies)
    assert result.success, result.failure
    assert result.pauses == 1
    issued = ("issue_refund", {"order_id": 1042, "amount_eur": 25.5, "approval_code": "AP-553"})
    unapproved = check(bench, "refund_approval", {"answer": "RF-1042-553"}, issued, pauses=0)
    assert unapproved is not None


async def test_invalid_replies_and_repairs_are_counted(bench: dict[str, ModuleType]) -> None:
    result = await run(
        bench,
        "capital_no_tool",
        ["not json at all", '{"thought": "t"', finish("Paris")],
    )
    assert result.success, result.failure
    assert result.invalid_replies == 2
    assert result.repairs == 2
    assert result.llm_calls == 3


def test_every_task_has_a_unique_name_and_totals_add_up(bench: dict[str, ModuleType]) -> None:
    tasks, report = bench["tasks"], bench["report"]
    names = [t.name for t in tasks.TASKS]
    assert len(names) == len(set(names))
    assert 15 <= len(names) <= 25
    rows = [
        {
            "success": ok,
            "steps": 2,
            "llm_calls": 4,
            "invalid_replies": 1,
            "repairs": 1,
            "error_steps": 0,
            "prompt_tokens": 100,
            "completion_tokens": 10,
            "wall_s": 1.5,
        }
        for ok in (True, False)
    ]
    summary = report.totals(rows)
    assert summary["succeeded"] == 1
    assert summary["success_rate"] == 0.5
    assert summary["prompt_tokens_per_step"] == 33.3  # 200 tokens / (4 steps + 2 answers)
    assert summary["prompt_tokens_per_call"] == 25.0
    assert tasks.has_number("budget: 480,000 EUR", 480000)
    assert not tasks.has_number("budget: 48,000 EUR", 480000)
