"""Trace viewer fixtures: a recorded planner run, a span store, a headless Chromium.

The browser is Debian's Chromium (`/usr/bin/chromium`, or `PENGUIFLOW_CHROMIUM`)
driven by Playwright. Without it the browser tests skip with the reason; with
CI=true a missing browser is a failure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from penguiflow.spans import Span
from penguiflow.state.memory import InMemoryStateStore
from penguiflow.state.sqlite import SQLiteStateStore

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

T = TypeVar("T")

T0 = 1_760_000_000.0  # the recorded run starts here (seconds since the epoch)


def unavailable(what: str, reason: str) -> None:
    message = f"{what} is not available ({reason})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true requires it")
    pytest.skip(message)


def chromium_path() -> str | None:
    configured = os.environ.get("PENGUIFLOW_CHROMIUM")
    if configured:
        return configured
    return shutil.which("chromium") or shutil.which("chromium-browser")


class RunBuilder:
    """Builds a run's spans by hand, with times in seconds after `T0`."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.spans: list[Span] = []
        self._count = 0

    def add(
        self,
        parent: Span | None,
        kind: str,
        name: str,
        start: float,
        end: float | None,
        *,
        status: str = "ok",
        attempt: int = 1,
        error: tuple[str, str] | None = None,
        attributes: dict[str, Any] | None = None,
        content: dict[str, Any] | None = None,
    ) -> Span:
        self._count += 1
        span = Span(
            run_id=self.run_id,
            span_id=f"{kind}-{self._count:03d}",
            parent_id=parent.span_id if parent is not None else None,
            kind=kind,
            name=name,
            start=T0 + start,
            end=None if end is None else T0 + end,
            status=status,
            error_type=error[0] if error else None,
            error_message=error[1] if error else None,
            attempt=attempt,
            attributes=attributes or {},
            content=content or {},
        )
        self.spans.append(span)
        return span

    def llm(
        self,
        step: Span,
        start: float,
        end: float,
        *,
        prompt: int,
        completion: int,
        cost: float,
        messages: list[dict[str, Any]],
        reply: str,
    ) -> Span:
        return self.add(
            step,
            "llm",
            "gpt-4o-mini",
            start,
            end,
            attributes={
                "model": "gpt-4o-mini",
                "purpose": "action",
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "cost_usd": cost,
                "cost_source": "price_table",
                "latency_ms": round((end - start) * 1000, 1),
            },
            content={"messages": messages, "reply": reply},
        )


SYSTEM = "You are a travel planner. Answer with one JSON action per turn."
QUERY = "Plan a weekend in Lisbon for Ada: check the weather in three districts, then book."


def planner_run(run_id: str = "run-lisbon-0001") -> list[Span]:
    """A recorded ReactPlanner run: a tool call, a parallel plan, a pause and a resume."""
    b = RunBuilder(run_id)
    root = b.add(
        None,
        "run",
        "ReactPlanner",
        0.0,
        9.2,
        attributes={
            "query": QUERY,
            "reason": "answer_complete",
            "answer": "Booked Hotel Alfama for Ada (PF-LIS-0001); sunny in Alfama and Baixa.",
            "llm_calls": 5,
            "prompt_tokens": 6120,
            "completion_tokens": 468,
            "total_tokens": 6588,
            "cost_usd": 0.001199,
            "tool_calls": 6,
            "wall_ms": 9200.0,
            "max_iters": 8,
            "hop_budget": 12,
            "hops_used": 5,
            "cost_budget_usd": 0.05,
            "resumes": 1,
        },
    )
    user = {"role": "user", "content": QUERY}
    step0 = b.add(root, "step", "step 0", 0.01, 1.4, attributes={"step": 0, "action": "tool"})
    b.llm(
        step0,
        0.02,
        0.9,
        prompt=820,
        completion=64,
        cost=0.000161,
        messages=[{"role": "system", "content": SYSTEM}, user],
        reply='{"thought": "Find the traveller first", "next_node": "lookup_traveller", '
        '"args": {"name": "Ada"}}',
    )
    b.add(
        step0,
        "tool",
        "lookup_traveller",
        0.92,
        1.38,
        attributes={"tool": "lookup_traveller", "call_id": "c1", "latency_ms": 460.0},
        content={"args": {"name": "Ada"}, "result": {"traveller": "Ada", "home": "London"}},
    )
    step1 = b.add(root, "step", "step 1", 1.41, 3.9, attributes={"step": 1, "action": "parallel"})
    b.llm(
        step1,
        1.42,
        2.2,
        prompt=1010,
        completion=112,
        cost=0.000219,
        messages=[{"role": "system", "content": SYSTEM}, user],
        reply='{"plan": [{"node": "check_weather", "args": {"district": "Alfama"}}, ...]}',
    )
    for branch, (district, end) in enumerate([("Alfama", 3.1), ("Baixa", 2.9), ("Belém", 3.3)]):
        failed = district == "Belém"
        b.add(
            step1,
            "tool",
            "check_weather",
            2.21 + branch * 0.01,
            end,
            status="error" if failed else "ok",
            error=("WeatherTimeout", "upstream timed out after 1.0s") if failed else None,
            attributes={
                "tool": "check_weather",
                "call_id": f"p{branch}",
                "branch": branch,
                "latency_ms": round((end - 2.21 - branch * 0.01) * 1000, 1),
            },
            content={
                "args": {"district": district},
                **({} if failed else {"result": {"district": district, "forecast": "sunny"}}),
            },
        )
    b.add(
        step1,
        "join",
        "merge_forecasts",
        3.32,
        3.88,
        attributes={"tool": "merge_forecasts", "call_id": "j1", "latency_ms": 560.0},
        content={
            "args": {"branches": 3, "failures": 1},
            "result": {"sunny": ["Alfama", "Baixa"], "unknown": ["Belém"]},
        },
    )
    step2 = b.add(
        root, "step", "step 2", 3.91, 5.0, status="paused", attributes={"step": 2, "action": "tool"}
    )
    b.llm(
        step2,
        3.92,
        4.6,
        prompt=1290,
        completion=80,
        cost=0.000242,
        messages=[{"role": "system", "content": SYSTEM}, user],
        reply='{"next_node": "book_hotel", "args": {"hotel": "Hotel Alfama", "nights": 2}}',
    )
    b.add(
        step2,
        "tool",
        "book_hotel",
        4.61,
        4.98,
        status="paused",
        attributes={"tool": "book_hotel", "call_id": "c2", "latency_ms": 370.0},
        content={"args": {"hotel": "Hotel Alfama", "nights": 2}},
    )
    b.add(
        step2,
        "pause",
        "approval_required",
        4.97,
        4.98,
        status="paused",
        attributes={"reason": "approval_required"},
        content={"payload": {"traveller": "Ada", "hotel": "Hotel Alfama", "amount_eur": 240}},
    )
    step3 = b.add(root, "step", "step 3", 6.0, 7.9, attributes={"step": 3, "action": "tool"})
    b.add(
        step3, "resume", "resume", 6.005, 6.015, content={"user_input": "approved by the manager"}
    )
    b.llm(
        step3,
        6.03,
        7.1,
        prompt=1400,
        completion=92,
        cost=0.000265,
        messages=[{"role": "system", "content": SYSTEM}, user],
        reply='{"next_node": "confirm_booking", "args": {"hotel": "Hotel Alfama"}}',
    )
    b.add(
        step3,
        "tool",
        "confirm_booking",
        7.11,
        7.88,
        attributes={"tool": "confirm_booking", "call_id": "c3", "latency_ms": 770.0},
        content={"args": {"hotel": "Hotel Alfama"}, "result": {"booking": "PF-LIS-0001"}},
    )
    step4 = b.add(root, "step", "step 4", 7.91, 9.19, attributes={"step": 4, "action": "finish"})
    b.llm(
        step4,
        7.92,
        9.18,
        prompt=1600,
        completion=120,
        cost=0.000312,
        messages=[{"role": "system", "content": SYSTEM}, user],
        reply="Booked Hotel Alfama for Ada (PF-LIS-0001); sunny in Alfama and Baixa.",
    )
    return b.spans


@pytest.fixture
def recorded_run() -> list[Span]:
    return planner_run()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (Playwright `Browser`), shared by one test module.

    Playwright's sync API keeps an event loop running on this thread while it is
    open: it must be closed before any asyncio test of another module runs.
    """
    path = chromium_path()
    if path is None or not Path(path).exists():
        unavailable("Chromium", "no chromium executable; apt-get install chromium")
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        unavailable("Playwright", str(exc))
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        except Error as exc:
            unavailable("Chromium", f"{path} did not start: {exc.message.splitlines()[0]}")
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def run_async(awaitable: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even inside a Playwright session.

    Playwright's sync API keeps an event loop running in the test's thread, so the
    coroutine gets a loop of its own in another thread.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, awaitable).result()


class LiveServer:
    """An ASGI app served by uvicorn on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self._run, name="viewer-ui-server", daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self._sock]))

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the UI server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self._sock.close()


def flow_trace(run_id: str, *, start: float, failed: bool = False) -> list[Span]:
    """A recorded flow trace: `fetch` then `summarise`, the second one failing if `failed`."""
    b = RunBuilder(run_id)
    root = b.add(
        None,
        "trace",
        "billing-flow",
        start,
        start + 0.5,
        status="error" if failed else "ok",
        error=("FlowError", "Node 'summarise' raised ValueError: empty invoice")
        if failed
        else None,
    )
    b.add(root, "node", "fetch", start + 0.01, start + 0.2, attributes={"node": "fetch"})
    b.add(
        root,
        "node",
        "summarise",
        start + 0.21,
        start + 0.49,
        status="error" if failed else "ok",
        error=("ValueError", "empty invoice") if failed else None,
        attributes={"node": "summarise", "node_id": "n2", "latency_ms": 280.0},
    )
    return b.spans


def paused_run(run_id: str, *, start: float, query: str) -> list[Span]:
    """A planner run that paused for approval and has not been resumed."""
    b = RunBuilder(run_id)
    root = b.add(
        None,
        "run",
        "ReactPlanner",
        start,
        start + 1.0,
        status="paused",
        attributes={"query": query, "llm_calls": 1, "cost_usd": 0.0002},
    )
    step = b.add(root, "step", "step 0", start + 0.01, start + 0.99, status="paused")
    b.add(
        step,
        "pause",
        "approval_required",
        start + 0.9,
        start + 0.91,
        status="paused",
        attributes={"reason": "approval_required"},
        content={"payload": {"amount": 250}},
    )
    return b.spans


def stored_runs() -> list[Span]:
    """Four runs of every status kind, the planner run the newest."""
    return [
        *flow_trace("trace-ok-0001", start=-300.0),
        *flow_trace("trace-failed-0002", start=-200.0, failed=True),
        *paused_run("run-refund-0003", start=-100.0, query="Refund order A-17 for Grace"),
        *planner_run(),
    ]


STORES = ["memory", "sqlite"]


def open_store(name: str, tmp_path: Path) -> Any:
    """A real span store of the named backend (SQLite in a file of the test's own)."""
    if name == "memory":
        return InMemoryStateStore()
    return SQLiteStateStore(tmp_path / "runs.db")


@pytest.fixture(params=STORES)
async def span_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A store of each backend, holding `stored_runs()`."""
    store = open_store(request.param, tmp_path)
    await store.save_spans(stored_runs())
    try:
        yield store
    finally:
        await store.close()
