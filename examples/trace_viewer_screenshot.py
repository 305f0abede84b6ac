"""Render a recorded planner run with the trace viewer, and screenshot it for the docs.

The run is built by hand as `Span`s (what `Recorder` stores for a ReactPlanner run):
a tool call, a parallel plan of three branches (one fails) and a join, a pause for
approval, a resume and the final answer. It is written as one self-contained HTML
page, then opened in Debian's headless Chromium through Playwright, its first LLM
call clicked, and the window saved as a PNG.

    python examples/trace_viewer_screenshot.py              # docs/images/trace-viewer.png
    python examples/trace_viewer_screenshot.py --html run.html --png shot.png

Without Chromium (`apt-get install chromium`) it writes the HTML page only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from penguiflow.spans import Span
from penguiflow.tracing.viewer import render_run_html

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
T0 = 1_760_000_000.0
QUERY = "Plan a weekend in Lisbon for Ada: check the weather in three districts, then book."
SYSTEM = "You are a travel planner. Answer with one JSON action per turn."


class Run:
    """Appends spans of one run; times are seconds after `T0`."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.spans: list[Span] = []

    def span(
        self,
        parent: Span | None,
        kind: str,
        name: str,
        start: float,
        end: float,
        status: str = "ok",
        error: tuple[str, str] | None = None,
        **fields: Any,
    ) -> Span:
        span = Span(
            run_id=self.run_id,
            span_id=f"{len(self.spans):04d}-{kind}",
            parent_id=parent.span_id if parent else None,
            kind=kind,
            name=name,
            start=T0 + start,
            end=T0 + end,
            status=status,
            error_type=error[0] if error else None,
            error_message=error[1] if error else None,
            attributes=fields.pop("attributes", {}),
            content=fields.pop("content", {}),
        )
        self.spans.append(span)
        return span

    def llm(
        self, step: Span, start: float, end: float, tokens: tuple[int, int], reply: str
    ) -> None:
        prompt, completion = tokens
        self.span(
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
                "cost_usd": round(prompt * 0.15e-6 + completion * 0.6e-6, 6),
                "cost_source": "price_table",
                "latency_ms": round((end - start) * 1000, 1),
            },
            content={
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": QUERY},
                ],
                "reply": reply,
            },
        )

    def tool(self, step: Span, name: str, start: float, end: float, **fields: Any) -> None:
        attributes = {"tool": name, "latency_ms": round((end - start) * 1000, 1)}
        attributes.update(fields.pop("attributes", {}))
        self.span(step, "tool", name, start, end, attributes=attributes, **fields)


def sample_run() -> list[Span]:
    """The recorded run the screenshot shows."""
    run = Run("9f2c4e1a7b3d4c5e8f60718293a4b5c6")
    root = run.span(None, "run", "ReactPlanner", 0.0, 9.2)
    step = run.span(root, "step", "step 0", 0.01, 1.4, attributes={"step": 0, "action": "tool"})
    run.llm(
        step, 0.02, 0.9, (820, 64), '{"next_node": "lookup_traveller", "args": {"name": "Ada"}}'
    )
    run.tool(
        step,
        "lookup_traveller",
        0.92,
        1.38,
        content={"args": {"name": "Ada"}, "result": {"traveller": "Ada", "home": "London"}},
    )
    step = run.span(root, "step", "step 1", 1.41, 3.9, attributes={"step": 1, "action": "parallel"})
    run.llm(step, 1.42, 2.2, (1010, 112), '{"plan": [{"node": "check_weather", ...}], "join": ...}')
    for branch, (district, end) in enumerate([("Alfama", 3.1), ("Baixa", 2.9), ("Belém", 3.3)]):
        failed = district == "Belém"
        run.tool(
            step,
            "check_weather",
            2.21 + branch * 0.01,
            end,
            status="error" if failed else "ok",
            error=("WeatherTimeout", "upstream timed out after 1.0s") if failed else None,
            attributes={"branch": branch},
            content={"args": {"district": district}}
            | ({} if failed else {"result": {"forecast": "sunny"}}),
        )
    run.span(
        step,
        "join",
        "merge_forecasts",
        3.32,
        3.88,
        content={"result": {"sunny": ["Alfama", "Baixa"], "unknown": ["Belém"]}},
    )
    step = run.span(root, "step", "step 2", 3.91, 5.0, "paused", attributes={"step": 2})
    run.llm(step, 3.92, 4.6, (1290, 80), '{"next_node": "book_hotel", "args": {"nights": 2}}')
    run.tool(step, "book_hotel", 4.61, 4.98, status="paused", content={"args": {"nights": 2}})
    run.span(
        step,
        "pause",
        "approval_required",
        4.97,
        4.98,
        "paused",
        attributes={"reason": "approval_required"},
        content={"payload": {"traveller": "Ada", "amount_eur": 240}},
    )
    step = run.span(root, "step", "step 3", 6.0, 7.9, attributes={"step": 3, "action": "tool"})
    run.span(step, "resume", "resume", 6.005, 6.015, content={"user_input": "approved"})
    run.llm(step, 6.03, 7.1, (1400, 92), '{"next_node": "confirm_booking"}')
    run.tool(step, "confirm_booking", 7.11, 7.88, content={"result": {"booking": "PF-LIS-0001"}})
    step = run.span(root, "step", "step 4", 7.91, 9.19, attributes={"step": 4, "action": "finish"})
    run.llm(step, 7.92, 9.18, (1600, 120), "Booked Hotel Alfama for Ada (PF-LIS-0001).")

    llm = [span.attributes for span in run.spans if span.kind == "llm"]
    root.attributes = {
        "query": QUERY,
        "reason": "answer_complete",
        "answer": "Booked Hotel Alfama for Ada (PF-LIS-0001).",
        "llm_calls": len(llm),
        "prompt_tokens": sum(a["prompt_tokens"] for a in llm),
        "completion_tokens": sum(a["completion_tokens"] for a in llm),
        "cost_usd": round(sum(a["cost_usd"] for a in llm), 6),
        "tool_calls": sum(1 for span in run.spans if span.kind == "tool"),
        "wall_ms": 9200.0,
        "hop_budget": 12,
        "hops_used": 5,
        "cost_budget_usd": 0.05,
        "resumes": 1,
    }
    return run.spans


def screenshot(html_path: Path, png_path: Path, chromium: str) -> None:
    """Open the page in headless Chromium, click the first LLM call, save a PNG."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 860})
            page.goto(html_path.resolve().as_uri())
            page.wait_for_selector("html[data-ready='1']")
            page.locator(".row[data-kind='llm']").first.click()
            png_path.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(png_path))
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, help="where to write the page (default: a temp file)")
    parser.add_argument("--png", type=Path, default=ROOT / "docs" / "images" / "trace-viewer.png")
    args = parser.parse_args(argv)

    html_path = args.html or Path(tempfile.mkdtemp(prefix="penguiflow-viewer-")) / "run.html"
    html_path.write_text(render_run_html(None, sample_run()), encoding="utf-8")
    print(f"wrote {html_path}")
    chromium = os.environ.get("PENGUIFLOW_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        print("no chromium on PATH (apt-get install chromium): no screenshot taken")
        return 0
    screenshot(html_path, args.png, chromium)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
