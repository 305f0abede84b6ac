"""The trace viewer in a real headless Chromium: what a person sees and clicks.

The run page is opened from a file (as `render_run_html` writes it); the run list
is served by uvicorn on 127.0.0.1 over a SQLite store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from penguiflow.spans import Span
from penguiflow.state.sqlite import SQLiteStateStore
from penguiflow.tracing.ui import build_ui_app
from penguiflow.tracing.viewer import render_run_html

from .conftest import QUERY, LiveServer, RunBuilder, run_async, stored_runs

pytestmark = pytest.mark.timeout(90)


def open_run(page: Any, tmp_path: Path, spans: list[Span], **kwargs: Any) -> list[str]:
    """Write the run's page to a file, open it, wait until it is drawn; page errors."""
    path = tmp_path / "run.html"
    path.write_text(render_run_html(None, spans, **kwargs), encoding="utf-8")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_selector("html[data-ready='1']", timeout=10_000)
    assert requests == [path.as_uri()]  # nothing but the file itself is loaded
    return errors


def texts(page: Any, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(selector).all_inner_texts()]


def total(page: Any, name: str) -> str:
    return str(page.locator(f"[data-total='{name}'] dd").inner_text())


def test_the_run_page_shows_the_spans_and_totals(
    page: Any, tmp_path: Path, recorded_run: list[Span]
) -> None:
    errors = open_run(page, tmp_path, recorded_run)

    assert errors == []
    assert page.locator(".row[data-span-id]").count() == len(recorded_run)
    kinds = page.eval_on_selector_all(".row", "rows => rows.map(r => r.dataset.kind)")
    assert kinds == [
        "run",
        "step", "llm", "tool",
        "step", "llm", "tool", "tool", "tool", "join",
        "step", "llm", "tool", "pause",
        "step", "resume", "llm", "tool",
        "step", "llm",
    ]  # fmt: skip
    branches = page.locator(".row[data-branch]")
    assert branches.count() == 3
    assert texts(page, ".row[data-branch] .name") == ["check_weather"] * 3
    assert page.eval_on_selector_all(
        ".row[data-branch]", "rows => rows.map(r => [r.dataset.branch, r.dataset.depth])"
    ) == [["0", "2"], ["1", "2"], ["2", "2"]]
    assert page.locator(".row[data-branch='2']").get_attribute("data-status") == "error"
    assert page.locator(".row[data-kind='pause']").get_attribute("data-status") == "paused"
    assert "lookup_traveller" in texts(page, ".row[data-kind='tool'] .name")

    assert {
        name: total(page, name)
        for name in (
            "status",
            "reason",
            "duration",
            "llm_calls",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            "tool_calls",
            "hops",
            "cost_budget_usd",
            "resumes",
        )
    } == {
        "status": "ok",
        "reason": "answer_complete",
        "duration": "9.20 s",
        "llm_calls": "5",
        "prompt_tokens": "6,120",
        "completion_tokens": "468",
        "cost_usd": "$0.001199",
        "tool_calls": "6",
        "hops": "5 / 12",
        "cost_budget_usd": "$0.0500",
        "resumes": "1",
    }
    assert page.locator("#query").inner_text() == QUERY


def test_parallel_branches_overlap_on_the_timeline(
    page: Any, tmp_path: Path, recorded_run: list[Span]
) -> None:
    open_run(page, tmp_path, recorded_run)

    boxes = [page.locator(f".row[data-branch='{index}'] .bar").bounding_box() for index in range(3)]
    step = page.locator(".row[data-kind='step']").nth(1).locator(".bar").bounding_box()
    for box in boxes:
        assert box is not None
        assert box["x"] >= step["x"] - 1
        assert box["x"] + box["width"] <= step["x"] + step["width"] + 1
    # Side by side in time, one row each.
    assert max(b["x"] for b in boxes) < min(b["x"] + b["width"] for b in boxes)
    assert len({round(b["y"]) for b in boxes}) == 3


def test_clicking_an_llm_call_shows_its_messages_and_reply(
    page: Any, tmp_path: Path, recorded_run: list[Span]
) -> None:
    open_run(page, tmp_path, recorded_run)

    page.locator(".row[data-kind='llm']").first.click()

    detail = page.locator("#detail")
    assert detail.get_attribute("data-span-id") == "llm-003"
    roles = detail.locator(".message").evaluate_all("els => els.map(e => e.dataset.role)")
    assert roles == ["system", "user"]
    assert detail.locator(".message[data-role='user'] pre").inner_text() == QUERY
    assert "lookup_traveller" in detail.locator("[data-section='reply'] pre").inner_text()
    facts = dict(
        zip(
            texts(page, "#detail [data-section='facts'] th"),
            texts(page, "#detail [data-section='facts'] td"),
        )
    )
    shown = ("model", "prompt_tokens", "completion_tokens", "latency_ms", "cost_usd")
    assert {key: facts[key] for key in shown} == {
        "model": "gpt-4o-mini",
        "prompt_tokens": "820",
        "completion_tokens": "64",
        "latency_ms": "880 ms",
        "cost_usd": "$0.000161",
    }  # fmt: skip


def test_clicking_tools_shows_arguments_results_and_errors(
    page: Any, tmp_path: Path, recorded_run: list[Span]
) -> None:
    open_run(page, tmp_path, recorded_run)
    detail = page.locator("#detail")

    page.locator(".row[data-kind='tool']", has_text="lookup_traveller").click()
    assert detail.get_attribute("data-kind") == "tool"
    assert detail.locator("[data-section='args'] pre").inner_text() == '{\n  "name": "Ada"\n}'
    assert '"home": "London"' in detail.locator("[data-section='result'] pre").inner_text()

    page.locator(".row[data-branch='2']").click()
    assert detail.locator("[data-section='error'] pre").inner_text() == (
        "WeatherTimeout: upstream timed out after 1.0s"
    )
    assert detail.locator("[data-section='result']").count() == 0

    page.locator(".row[data-kind='pause']").click()
    assert "approval_required" in detail.locator("[data-section='facts']").inner_text()
    assert '"amount_eur": 240' in detail.locator("[data-section='payload'] pre").inner_text()

    page.locator(".row[data-kind='resume']").click()
    assert detail.locator("[data-section='user_input'] pre").inner_text() == (
        "approved by the manager"
    )

    # The keyboard moves the selection too.
    page.keyboard.press("ArrowDown")
    assert detail.get_attribute("data-kind") == "llm"


def test_hostile_content_is_shown_as_text(page: Any, tmp_path: Path) -> None:
    evil = "</script><img src=x onerror=\"document.title='pwned'\"><b>bold</b>"
    b = RunBuilder("run-evil")
    root = b.add(None, "run", evil, 0.0, 1.0, attributes={"query": evil})
    step = b.add(root, "step", "step 0", 0.1, 0.9)
    b.add(step, "llm", "m", 0.2, 0.8, content={"messages": [{"role": evil, "content": evil}]})

    errors = open_run(page, tmp_path, b.spans, title=evil)
    page.locator(".row[data-kind='llm']").click()

    assert errors == []
    assert page.locator("img").count() == 0
    assert page.locator("#detail b, #timeline b, header b").count() == 0
    assert page.title() == f"{evil} · penguiflow trace"
    assert page.locator("#detail .message pre").inner_text() == evil
    assert page.locator("#title").inner_text() == evil


def test_a_running_span_is_drawn_to_the_end_of_the_run(page: Any, tmp_path: Path) -> None:
    b = RunBuilder("run-live")
    root = b.add(None, "run", "ReactPlanner", 0.0, None, status="running")
    step = b.add(root, "step", "step 0", 0.0, None, status="running")
    b.add(step, "tool", "slow", 0.5, 2.0)

    open_run(page, tmp_path, b.spans)

    root_bar = page.locator(".row[data-kind='run'] .bar").bounding_box()
    tool_bar = page.locator(".row[data-kind='tool'] .bar").bounding_box()
    assert abs((root_bar["x"] + root_bar["width"]) - (tool_bar["x"] + tool_bar["width"])) < 1.5
    assert page.locator(".row[data-kind='step'] .dur").inner_text() == "running"
    assert "s-running" in (page.locator(".row[data-kind='run'] .bar").get_attribute("class") or "")


def test_five_hundred_spans_draw_quickly(page: Any, tmp_path: Path) -> None:
    b = RunBuilder("run-big")
    root = b.add(None, "run", "ReactPlanner", 0.0, 500.0)
    for index in range(166):
        step = b.add(root, "step", f"step {index}", index * 3.0, index * 3.0 + 2.9)
        b.add(step, "llm", "gpt-4o-mini", index * 3.0, index * 3.0 + 1.0)
        b.add(step, "tool", f"tool_{index}", index * 3.0 + 1.0, index * 3.0 + 2.8)

    open_run(page, tmp_path, b.spans)

    assert page.locator(".row").count() == 499
    ready_ms = float(page.locator("html").get_attribute("data-ready-ms"))
    assert ready_ms < 5000


# -- the run list, served ------------------------------------------------------------


@pytest.fixture
def live_ui(tmp_path: Path) -> Iterator[LiveServer]:
    store = SQLiteStateStore(tmp_path / "runs.db")
    run_async(store.save_spans(stored_runs()))
    try:
        with LiveServer(build_ui_app(store)) as server:
            yield server
    finally:
        run_async(store.close())


def listed(page: Any) -> list[str]:
    return list(
        page.eval_on_selector_all("#runs tr[data-run-id]", "rows => rows.map(r => r.dataset.runId)")
    )


def wait_for_query(page: Any, query: str) -> None:
    page.wait_for_selector(f"#runs[data-query='{query}']", timeout=10_000)


def test_the_run_list_filters_by_status_and_text(page: Any, live_ui: LiveServer) -> None:
    page.goto(live_ui.url + "/")
    wait_for_query(page, "")
    assert listed(page) == [
        "run-lisbon-0001",
        "run-refund-0003",
        "trace-failed-0002",
        "trace-ok-0001",
    ]

    page.select_option("#status", "error")
    wait_for_query(page, "status=error")
    assert listed(page) == ["trace-failed-0002"]
    assert "empty invoice" in page.locator("#runs tr").first.inner_text()

    page.select_option("#status", "")
    page.fill("#search", "grace")
    wait_for_query(page, "text=grace")
    assert listed(page) == ["run-refund-0003"]

    page.select_option("#status", "ok")
    wait_for_query(page, "status=ok&text=grace")
    assert listed(page) == []
    assert page.locator("#empty").inner_text() == "No runs match."
    assert page.url.endswith("/?status=ok&text=grace")

    page.fill("#search", "LISBON")
    wait_for_query(page, "status=ok&text=LISBON")
    assert listed(page) == ["run-lisbon-0001"]
    assert "$0.001199" in page.locator("#runs tr").first.inner_text()


def test_a_run_in_the_list_links_to_its_page(page: Any, live_ui: LiveServer) -> None:
    page.goto(live_ui.url + "/?status=paused")
    wait_for_query(page, "status=paused")

    page.locator("#runs a.run-link").first.click()
    page.wait_for_selector("html[data-ready='1']")

    assert page.url == live_ui.url + "/runs/run-refund-0003"
    assert page.locator(".row[data-kind='pause']").count() == 1
    assert total(page, "status") == "paused"

    page.locator("#back").click()
    wait_for_query(page, "")
    assert len(listed(page)) == 4


async def record_a_planner_run(path: Path) -> list[Span]:
    """A real ReactPlanner run (a tool, a parallel plan with a join, a pause, a resume),
    recorded to SQLite by a Recorder and loaded back."""
    import json

    from pydantic import BaseModel

    from penguiflow import ModelRegistry, Node, build_catalog
    from penguiflow.planner import PlannerPause, ReactPlanner
    from penguiflow.planner.clients import LLMReply
    from penguiflow.testkit import ScriptedLLMClient
    from penguiflow.tracing import Recorder

    class City(BaseModel):
        city: str

    class Weather(BaseModel):
        city: str
        sunny_days: int

    class Picked(BaseModel):
        results: list[dict[str, Any]]

    async def weather(args: City, ctx: Any) -> Weather:
        return Weather(city=args.city, sunny_days=len(args.city))

    async def pick(args: Picked, ctx: Any) -> City:
        return City(city=max(args.results, key=lambda r: r["sunny_days"])["city"])

    async def approve(args: City, ctx: Any) -> City:
        await ctx.pause("approval_required", {"city": args.city})
        raise AssertionError("unreachable")

    registry = ModelRegistry()
    registry.register("weather", City, Weather)
    registry.register("pick", Picked, City)
    registry.register("approve", City, City)
    catalog = build_catalog([Node(f, name=f.__name__) for f in (weather, pick, approve)], registry)

    def reply(prompt: int, **action: Any) -> LLMReply:
        text = json.dumps({"thought": f"thinking {prompt}", **action})
        return LLMReply(text, prompt_tokens=prompt, completion_tokens=10, cost_usd=0.001)

    store = SQLiteStateStore(path)
    first = ReactPlanner(
        llm_client=ScriptedLLMClient(
            [
                reply(100, next_node="weather", args={"city": "Oslo"}),
                reply(
                    200,
                    plan=[{"node": "weather", "args": {"city": c}} for c in ("Rome", "Lisbon")],
                    join={"node": "pick", "args": {}},
                ),
                reply(300, next_node="approve", args={"city": "Lisbon"}),
            ]
        ),
        catalog=catalog,
        state_store=store,
    )
    second = ReactPlanner(
        llm_client=ScriptedLLMClient([reply(400, next_node=None, args={"answer": "Lisbon"})]),
        catalog=catalog,
        state_store=store,
    )
    async with Recorder(store) as recorder:
        recorder.attach(first)
        recorder.attach(second)
        paused = await first.run("Where is it sunniest?")
        assert isinstance(paused, PlannerPause)
        await second.resume(paused.resume_token, user_input="yes, book it")
    (run,) = await store.list_runs()
    spans = list(await store.load_run(run.run_id))
    await store.close()
    return spans


def test_a_recorded_planner_run_is_shown_with_its_calls(page: Any, tmp_path: Path) -> None:
    spans = run_async(record_a_planner_run(tmp_path / "state.db"))

    errors = open_run(page, tmp_path, spans)

    assert errors == []
    kinds = page.eval_on_selector_all(".row", "rows => rows.map(r => r.dataset.kind)")
    assert kinds.count("llm") == 4
    assert kinds.count("tool") == 4  # weather, two branches, approve
    assert kinds.count("join") == 1
    assert "pause" in kinds
    assert "resume" in kinds
    assert total(page, "llm_calls") == "4"
    assert "$0.004" in total(page, "cost_usd")
    # The last LLM call's prompt is shown in full (the store keeps only what was new).
    page.locator(".row[data-kind='llm']").last.click()
    detail = page.locator("#detail")
    roles = detail.locator(".message").evaluate_all("els => els.map(e => e.dataset.role)")
    assert roles[:2] == ["system", "user"]
    assert len(roles) > 6  # the whole conversation up to the resume
    assert "yes, book it" in detail.inner_text()
    # A parallel branch shows its arguments and result.
    page.locator(".row[data-kind='tool']").nth(2).click()
    shown = page.locator("#detail").inner_text()
    assert "Lisbon" in shown
    assert "sunny_days" in shown
