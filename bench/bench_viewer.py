"""Trace viewer: render a 500-span run to HTML and draw it in headless Chromium.

Two figures, each against a floor measured in the same run:

* Python render: `render_run_html(None, spans)` for a 500-span planner run, against
  a floor of `json.dumps` of the same spans' dicts (the serialisation any page of
  the run must do); median of interleaved rounds.
* Browser draw: load the page from a file in Debian's headless Chromium and take
  `performance.now()` when the first frame after the viewer built its DOM has been
  painted (an init script waits for DOMContentLoaded, then a frame, then a task).
  The floor is a static page of the same size in the same browser: the same HTML
  (stylesheet and embedded JSON) with the viewer script left out. The page's own
  `data-ready-ms` (set by the viewer once the DOM is built) is reported as well.

Without Chromium (`apt-get install chromium`) or Playwright the browser row is
reported as skipped; the bench never fails on a number.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import Result, interleave, run_cli
from penguiflow.spans import Span
from penguiflow.tracing.viewer import render_run_html

SPANS = 500
RENDER_TARGET_MS = 50.0
DRAW_TARGET_MS = 300.0
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Runs before any page script: records when the first frame after the DOM was
# built has been painted (a frame's callbacks run before its paint; the message
# task after it runs once the frame is out).
DRAWN_PROBE = """
document.addEventListener("DOMContentLoaded", () => {
  requestAnimationFrame(() => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => { window.__drawnAt = performance.now(); };
    channel.port2.postMessage(null);
  });
});
"""


WAIT_FOR_DRAWN = """() => new Promise((resolve) => {
  const check = () =>
    window.__drawnAt !== undefined ? resolve(window.__drawnAt) : setTimeout(check, 5);
  check();
})"""


def big_run(n: int = SPANS) -> list[Span]:
    """A planner run of `n` spans: steps, each with an LLM call and a tool call."""
    t0 = 1_760_000_000.0
    run_id = "bench-viewer-run"
    spans = [
        Span(
            run_id,
            "root",
            None,
            "run",
            "ReactPlanner",
            t0,
            t0 + n,
            "ok",
            attributes={"query": "benchmark", "llm_calls": n // 3, "cost_usd": 0.5},
        )
    ]
    index = 0
    while len(spans) < n:
        start = t0 + index * 3.0
        step = Span(run_id, f"s{index}", "root", "step", f"step {index}", start, start + 2.9, "ok")
        spans.append(step)
        spans.append(
            Span(
                run_id,
                f"l{index}",
                step.span_id,
                "llm",
                "gpt-4o-mini",
                start,
                start + 1.0,
                "ok",
                attributes={"model": "gpt-4o-mini", "prompt_tokens": 900, "cost_usd": 0.0002},
                content={
                    "messages": [{"role": "user", "content": "word " * 200}],
                    "reply": '{"next_node": "lookup", "args": {"q": "penguins"}}',
                },
            )
        )
        spans.append(
            Span(
                run_id,
                f"t{index}",
                step.span_id,
                "tool",
                "lookup",
                start + 1.0,
                start + 2.8,
                "ok",
                attributes={"tool": "lookup", "latency_ms": 1800.0},
                content={"args": {"q": "penguins"}, "result": {"hits": list(range(20))}},
            )
        )
        index += 1
    return spans[:n]


def render_row(spans: list[Span], repeats: int) -> Result:
    def subject() -> float:
        start = time.perf_counter()
        render_run_html(None, spans)
        return time.perf_counter() - start

    def floor() -> float:
        start = time.perf_counter()
        json.dumps([span.to_dict() for span in spans])
        return time.perf_counter() - start

    paired = interleave(subject, floor, repeats=repeats, warmup=2)
    subject_ms = paired.subject_median * 1000
    return Result(
        name=f"render_run_html ({len(spans)} spans)",
        subject=subject_ms,
        floor=paired.floor_median * 1000,
        unit="ms",
        ratio=paired.ratio,
        target=f"<= {RENDER_TARGET_MS:g} ms",
        met=subject_ms <= RENDER_TARGET_MS,
        note=f"floor: json.dumps of the span dicts; {repeats} interleaved rounds",
    )


def skipped(reason: str, n: int) -> Result:
    nan = float("nan")
    return Result(
        name=f"viewer drawn in Chromium ({n} spans)",
        subject=nan,
        floor=nan,
        unit="ms",
        ratio=nan,
        target=f"<= {DRAW_TARGET_MS:g} ms",
        met=None,
        note=f"skipped: {reason}",
    )


def draw_row(spans: list[Span], repeats: int) -> Result:
    chromium = os.environ.get("PENGUIFLOW_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        return skipped("no chromium on PATH (apt-get install chromium)", len(spans))
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        return skipped(f"playwright is not installed ({exc})", len(spans))

    page_html = render_run_html(None, spans)
    # The floor: the same bytes but the viewer's script, padded back to the same size.
    script = re.search(r"<script>\n(.*?)</script>", page_html, re.S)
    assert script is not None
    static_html = page_html.replace(script.group(1), "/*" + "-" * (len(script.group(1)) - 4) + "*/")
    with tempfile.TemporaryDirectory(prefix="penguiflow-bench-viewer-") as tmp:
        viewer_path = Path(tmp) / "viewer.html"
        static_path = Path(tmp) / "static.html"
        viewer_path.write_text(page_html, encoding="utf-8")
        static_path.write_text(static_html, encoding="utf-8")
        ready: list[float] = []
        with sync_playwright() as playwright:
            try:
                browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            except Error as exc:
                return skipped(
                    f"{chromium} did not start: {exc.message.splitlines()[0]}", len(spans)
                )
            try:
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                context.add_init_script(DRAWN_PROBE)
                page = context.new_page()

                def load(path: Path) -> float:
                    page.goto(path.as_uri())
                    # A function, not a string predicate: the page's CSP forbids eval.
                    drawn = page.evaluate(WAIT_FOR_DRAWN)
                    return float(drawn) / 1000

                def subject() -> float:
                    seconds = load(viewer_path)
                    rows = page.locator(".row").count()
                    if rows != len(spans):
                        raise RuntimeError(f"viewer drew {rows} rows for {len(spans)} spans")
                    ready.append(float(page.locator("html").get_attribute("data-ready-ms") or 0))
                    return seconds

                paired = interleave(subject, lambda: load(static_path), repeats=repeats, warmup=2)
            finally:
                browser.close()
    subject_ms = paired.subject_median * 1000
    ready_ms = statistics.median(ready[-repeats:])
    size_kib = len(page_html.encode()) / 1024
    return Result(
        name=f"viewer drawn in Chromium ({len(spans)} spans)",
        subject=subject_ms,
        floor=paired.floor_median * 1000,
        unit="ms",
        ratio=paired.ratio,
        target=f"<= {DRAW_TARGET_MS:g} ms",
        met=subject_ms <= DRAW_TARGET_MS,
        note=(
            f"first painted frame after load, from navigation start; DOM built at "
            f"{ready_ms:.0f} ms (data-ready-ms); floor: the same {size_kib:.0f} KiB page "
            f"without the viewer script; {repeats} interleaved rounds"
        ),
        extra={"ready_ms": ready_ms, "page_kib": size_kib},
    )


def main(quick: bool = False) -> list[Result]:
    spans = big_run(60 if quick else SPANS)
    repeats = 3 if quick else 15
    return [render_row(spans, repeats), draw_row(spans, repeats)]


if __name__ == "__main__":
    sys.exit(run_cli(__doc__ or "", main, "Trace viewer"))
