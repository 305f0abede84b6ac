"""The trace viewer's HTML, and the local UI app over a real span store."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import httpx
import pytest

from penguiflow.errors import MissingExtraError
from penguiflow.spans import RunSummary, Span
from penguiflow.tracing.ui import build_ui_app, serve_ui
from penguiflow.tracing.viewer import render_run_html

from .conftest import T0, RunBuilder

EVIL = '</script><img src=x onerror="alert(1)"><!-- <script>alert(2)</script>'


def embedded(page: str) -> Any:
    """The run data the page carries in its JSON script element."""
    match = re.search(r'<script type="application/json" id="run-data">(.*?)</script>', page, re.S)
    assert match is not None
    return json.loads(match.group(1))


def test_the_page_is_self_contained(recorded_run: list[Span]) -> None:
    page = render_run_html(None, recorded_run)

    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "http://" not in page
    assert "https://" not in page
    assert "<link" not in page
    assert "@import" not in page
    assert "default-src 'none'" in page  # the CSP forbids the network outright
    assert page.count("<script") == 2  # the JSON data and the inline viewer script


def test_the_page_embeds_the_run_and_its_summary(recorded_run: list[Span]) -> None:
    shuffled = list(reversed(recorded_run))

    data = embedded(render_run_html(None, shuffled))

    root = recorded_run[0]
    assert data["summary"] == RunSummary.from_root(root, len(recorded_run)).to_dict()
    assert data["spans"] == [span.to_dict() for span in recorded_run]  # ordered by start
    assert data["title"] is None


def test_a_given_summary_and_title_are_used(recorded_run: list[Span]) -> None:
    summary = RunSummary.from_root(recorded_run[0], 99)

    page = render_run_html(summary, recorded_run, title="Lisbon <trip> & more")

    assert "<title>Lisbon &lt;trip&gt; &amp; more · penguiflow trace</title>" in page
    data = embedded(page)
    assert data["summary"]["span_count"] == 99
    assert data["title"] == "Lisbon <trip> & more"


def test_script_breaking_content_cannot_leave_the_data_element() -> None:
    b = RunBuilder("run-evil")
    root = b.add(None, "run", "ReactPlanner", 0.0, 1.0, attributes={"query": EVIL})
    step = b.add(root, "step", "step 0", 0.1, 0.9)
    b.add(
        step,
        "llm",
        EVIL,
        0.2,
        0.8,
        content={"messages": [{"role": "user", "content": EVIL}], "reply": "a\u2028b\u2029c"},
    )

    page = render_run_html(None, b.spans, title=EVIL)

    assert "<img" not in page
    assert "<!--" not in page
    assert page.count("</script>") == 2  # only the page's own two script elements close
    assert "\u2028" not in page
    data = embedded(page)
    llm = data["spans"][2]
    assert llm["name"] == EVIL
    assert llm["content"] == {
        "messages": [{"role": "user", "content": EVIL}],
        "reply": "a\u2028b\u2029c",
    }
    assert data["summary"]["attributes"]["query"] == EVIL


def test_placeholder_like_content_stays_as_written() -> None:
    b = RunBuilder("run-at")
    b.add(None, "run", "ReactPlanner", 0.0, 1.0, attributes={"query": "@@SCRIPT@@ @@STYLE@@"})

    page = render_run_html(None, b.spans)

    assert embedded(page)["spans"][0]["attributes"]["query"] == "@@SCRIPT@@ @@STYLE@@"


def test_values_json_cannot_hold_are_shown_as_text() -> None:
    b = RunBuilder("run-nan")
    b.add(
        None,
        "run",
        "ReactPlanner",
        0.0,
        None,
        attributes={"cost_usd": float("nan"), "when": T0, "tags": ("a", "b")},
        content={"obj": object},
    )

    span = embedded(render_run_html(None, b.spans))["spans"][0]

    assert span["attributes"] == {"cost_usd": "nan", "when": T0, "tags": ["a", "b"]}
    assert span["content"] == {"obj": "<class 'object'>"}
    assert span["end"] is None


def test_a_run_without_spans_still_renders() -> None:
    data = embedded(render_run_html(None, []))

    assert data == {"title": None, "back_href": None, "summary": None, "spans": []}


# -- the UI app ----------------------------------------------------------------------


@pytest.fixture
async def client(span_store: Any) -> Any:
    app = build_ui_app(span_store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


def run_ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [run["run_id"] for run in response.json()["runs"]]


async def test_the_run_list_page_is_self_contained(client: httpx.AsyncClient) -> None:
    response = await client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "connect-src 'self'" in response.headers["content-security-policy"]
    page = response.text
    assert '<select id="status"' in page
    assert '<input type="search" id="search"' in page
    assert "http://" not in page
    assert "https://" not in page


async def test_the_api_lists_runs_newest_first_with_filters(client: httpx.AsyncClient) -> None:
    everything = ["run-lisbon-0001", "run-refund-0003", "trace-failed-0002", "trace-ok-0001"]
    assert run_ids(await client.get("/api/runs")) == everything
    assert run_ids(await client.get("/api/runs?status=error")) == ["trace-failed-0002"]
    assert run_ids(await client.get("/api/runs?status=paused")) == ["run-refund-0003"]
    assert run_ids(await client.get("/api/runs?text=GRACE")) == ["run-refund-0003"]
    assert run_ids(await client.get("/api/runs?text=empty%20invoice")) == ["trace-failed-0002"]
    assert run_ids(await client.get("/api/runs?kind=trace&status=ok")) == ["trace-ok-0001"]
    assert run_ids(await client.get("/api/runs?status=&text=")) == everything
    assert run_ids(await client.get("/api/runs?offset=1&limit=2")) == everything[1:3]


async def test_the_api_gives_whole_summaries(
    client: httpx.AsyncClient, recorded_run: list[Span]
) -> None:
    response = await client.get("/api/runs?text=lisbon")

    assert response.json() == {
        "runs": [RunSummary.from_root(recorded_run[0], len(recorded_run)).to_dict()],
        "offset": 0,
        "limit": 50,
        "status": None,
        "kind": None,
        "text": "lisbon",
    }


@pytest.mark.parametrize(
    "query",
    ["offset=-1", "offset=abc", "limit=-5", "limit=1.5", "limit=501", "status=bogus", "kind=x"],
)
async def test_the_api_refuses_bad_filters_and_paging(
    client: httpx.AsyncClient, query: str
) -> None:
    response = await client.get(f"/api/runs?{query}")

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert query.split("=")[0] in response.json()["error"]


async def test_the_api_gives_one_run(client: httpx.AsyncClient, recorded_run: list[Span]) -> None:
    response = await client.get("/api/runs/run-lisbon-0001")

    assert response.status_code == 200
    assert response.json() == {
        "summary": RunSummary.from_root(recorded_run[0], len(recorded_run)).to_dict(),
        "spans": [span.to_dict() for span in recorded_run],
    }


async def test_an_unknown_run_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/runs/no-such-run")

    assert response.status_code == 404
    assert response.json() == {"error": "unknown run", "run_id": "no-such-run"}


async def test_the_run_page_is_the_viewer_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/runs/run-lisbon-0001")

    assert response.status_code == 200
    assert "default-src 'none'" in response.headers["content-security-policy"]
    spans = await client.get("/api/runs/run-lisbon-0001")
    data = embedded(response.text)
    assert data["back_href"] == "../"
    assert data["spans"] == spans.json()["spans"]
    assert data["summary"] == spans.json()["summary"]


async def test_an_unknown_run_page_is_a_404_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/runs/no-such-run")

    assert response.status_code == 404
    assert embedded(response.text)["title"] == "Unknown run no-such-run"


async def test_requests_for_another_host_name_are_refused(client: httpx.AsyncClient) -> None:
    # A page served from a rebound DNS name must not read the recorded prompts.
    response = await client.get("/api/runs", headers={"Host": "attacker.example:8765"})

    assert response.status_code == 400
    assert "run-lisbon-0001" not in response.text


def test_without_starlette_the_ui_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "starlette" or name.startswith("starlette."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "starlette", None)

    with pytest.raises(MissingExtraError, match=r"pip install 'penguiflow\[ui\]'") as caught:
        build_ui_app(object())

    assert caught.value.extra == "ui"


def test_without_uvicorn_serving_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "uvicorn", raising=False)
    monkeypatch.setitem(sys.modules, "uvicorn", None)

    with pytest.raises(MissingExtraError, match=r"pip install 'penguiflow\[ui\]'") as caught:
        serve_ui(object())

    assert caught.value.extra == "ui"
