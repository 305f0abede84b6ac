"""The local trace viewer: one recorded run as one self-contained HTML page.

`render_run_html(summary, spans)` gives a document with its stylesheet, script and
the run's spans inlined: it opens from a file, offline, and loads nothing from the
network (its Content-Security-Policy forbids it). The page shows the run's totals,
a waterfall of its spans and, for the span clicked, its detail (LLM messages and
reply, tool arguments and result, errors, attributes).

Span content is user and LLM data. It travels as JSON inside a
`<script type="application/json">` element, with `<`, `>` and `&` escaped so no
content can close that element, and the page's script inserts every piece of it as
text, never as markup.

Usage::

    spans = await store.load_run(run_id)
    Path("run.html").write_text(render_run_html(None, spans), encoding="utf-8")
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from ..spans import RunSummary, Span, expand_messages
from ._html import asset, fill, json_for_script, run_summary

__all__ = ["render_run_html"]


def render_run_html(
    summary: RunSummary | None,
    spans: Sequence[Span],
    *,
    title: str | None = None,
    back_href: str | None = None,
) -> str:
    """One self-contained HTML page showing the run made of `spans`.

    `summary` supplies the run's totals; `None` takes them from the root span (the
    span without a parent). `title` defaults to the run's name. `back_href`, when
    given, adds an "all runs" link (the local UI links back to its run list).
    Values JSON cannot hold (NaN, arbitrary objects) are shown as their `str()`.
    """
    ordered = sorted(expand_messages(spans), key=lambda span: (span.start, span.span_id))
    if summary is None:
        summary = run_summary(ordered)
    page_title = title or (summary.name if summary is not None else "penguiflow run")
    payload = {
        "title": title,
        "back_href": back_href,
        "summary": summary.to_dict() if summary is not None else None,
        "spans": [span.to_dict() for span in ordered],
    }
    return fill(
        asset("run.html"),
        TITLE=html.escape(f"{page_title} · penguiflow trace"),
        STYLE=asset("viewer.css"),
        SCRIPT=asset("viewer.js"),
        DATA=json_for_script(payload),
    )
