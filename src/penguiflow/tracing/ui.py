"""A small local web UI over a `SpanStore`: the list of recorded runs, and each run.

Needs the `ui` extra (`pip install 'penguiflow[ui]'`: Starlette and uvicorn).

Routes:

* `/` — the run list (filter by status, search by text; the page calls the API);
* `/runs/{run_id}` — the run's page, as `render_run_html` draws it;
* `/api/runs?status=&kind=&text=&offset=&limit=` — `{"runs": [summary, ...], ...}`,
  newest first (400 for a bad status or paging value);
* `/api/runs/{run_id}` — `{"summary": ..., "spans": [...]}` (404 for an unknown run).

The UI shows LLM prompts and tool data, so it binds 127.0.0.1 by default and answers
only requests whose `Host` is one it serves (`allowed_hosts`), which keeps a web page
in the browser from reading it through a rebound DNS name.

Usage::

    from penguiflow.state.sqlite import SQLiteStateStore
    from penguiflow.tracing.ui import serve_ui

    serve_ui(SQLiteStateStore("runs.db"))  # then open http://127.0.0.1:8765/
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError, MissingExtraError
from ..spans import RUN_KINDS, expand_messages
from ..state.errors import InvalidDataError
from ._html import asset, fill, run_summary
from .viewer import render_run_html

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from ..state.protocol import SpanStore

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "MAX_PAGE", "build_ui_app", "serve_ui"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: The most runs one `/api/runs` call returns.
MAX_PAGE = 500

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
_STATUSES = frozenset({"running", "ok", "error", "paused", "cancelled"})
_MISSING = "the trace UI needs Starlette and uvicorn: pip install 'penguiflow[ui]'"

_PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _PAGE_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def build_ui_app(store: SpanStore, *, allowed_hosts: Sequence[str] | None = None) -> Starlette:
    """The ASGI app of the UI over `store` (see the module docstring for its routes).

    `allowed_hosts` are the `Host` names it answers (default: 127.0.0.1 and
    localhost; `["*"]` answers any). Raises `MissingExtraError` without Starlette.
    """
    try:
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.middleware.trustedhost import TrustedHostMiddleware
        from starlette.responses import HTMLResponse, JSONResponse
        from starlette.routing import Route
    except ImportError as exc:
        raise MissingExtraError(_MISSING, extra="ui") from exc

    runs_page = fill(asset("runs.html"), STYLE=asset("viewer.css"), SCRIPT=asset("runs.js"))

    def error(status_code: int, message: str, **details: Any) -> Response:
        return JSONResponse({"error": message, **details}, status_code, headers=_HEADERS)

    async def index(request: Request) -> Response:
        return HTMLResponse(runs_page, headers=_HEADERS)

    async def run_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        # The page sits at /runs/<id>: "../" is the run list wherever the app is mounted.
        back = "../" * (1 + run_id.count("/"))
        try:
            spans = await store.load_run(run_id)
        except InvalidDataError as exc:
            return HTMLResponse(html.escape(str(exc)), 400, headers=_HEADERS)
        if not spans:
            page = render_run_html(None, [], title=f"Unknown run {run_id}", back_href=back)
            return HTMLResponse(page, 404, headers=_HEADERS)
        return HTMLResponse(
            render_run_html(run_summary(spans), spans, back_href=back), headers=_HEADERS
        )

    async def api_runs(request: Request) -> Response:
        params = request.query_params
        try:
            offset = _page_value(params.get("offset"), "offset", default=0)
            limit = _page_value(params.get("limit"), "limit", default=50)
        except InvalidArgumentError as exc:
            return error(400, str(exc))
        if limit > MAX_PAGE:
            return error(400, f"limit must be at most {MAX_PAGE}, got {limit}")
        status = params.get("status") or None
        if status is not None and status not in _STATUSES:
            return error(400, f"status must be one of {sorted(_STATUSES)}, got {status!r}")
        kind = params.get("kind") or None
        if kind is not None and kind not in RUN_KINDS:
            return error(400, f"kind must be one of {sorted(RUN_KINDS)}, got {kind!r}")
        text = params.get("text") or None
        try:
            runs = await store.list_runs(
                status=status, kind=kind, text=text, offset=offset, limit=limit
            )
        except InvalidDataError as exc:
            return error(400, str(exc))
        return JSONResponse(
            {
                "runs": [run.to_dict() for run in runs],
                "offset": offset,
                "limit": limit,
                "status": status,
                "kind": kind,
                "text": text,
            },
            headers=_HEADERS,
        )

    async def api_run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            spans = expand_messages(await store.load_run(run_id))
        except InvalidDataError as exc:
            return error(400, str(exc))
        if not spans:
            return error(404, "unknown run", run_id=run_id)
        summary = run_summary(spans)
        return JSONResponse(
            {
                "summary": summary.to_dict() if summary is not None else None,
                "spans": [span.to_dict() for span in spans],
            },
            headers=_HEADERS,
        )

    hosts = list(allowed_hosts) if allowed_hosts is not None else list(_LOOPBACK_HOSTS)
    return Starlette(
        routes=[
            Route("/", index),
            Route("/runs/{run_id:path}", run_page),
            Route("/api/runs", api_runs),
            Route("/api/runs/{run_id:path}", api_run),
        ],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
    )


def serve_ui(
    store: SpanStore,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    allowed_hosts: Sequence[str] | None = None,
    **uvicorn_options: Any,
) -> None:
    """Serve the UI over `store` with uvicorn until interrupted.

    Binds 127.0.0.1 unless told otherwise. A non-loopback `host` is added to the
    answered `Host` names; serving on `0.0.0.0` takes an explicit `allowed_hosts`.
    Raises `MissingExtraError` without the `ui` extra.
    """
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingExtraError(_MISSING, extra="ui") from exc
    if allowed_hosts is None:
        allowed_hosts = list(_LOOPBACK_HOSTS)
        if host not in allowed_hosts:
            allowed_hosts.append(host)
    app = build_ui_app(store, allowed_hosts=allowed_hosts)
    uvicorn_options.setdefault("log_level", "warning")
    uvicorn.run(app, host=host, port=port, **uvicorn_options)


def _page_value(raw: str | None, name: str, *, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgumentError(f"{name} must be an int >= 0, got {raw!r}") from None
    if value < 0:
        raise InvalidArgumentError(f"{name} must be an int >= 0, got {value}")
    return value
