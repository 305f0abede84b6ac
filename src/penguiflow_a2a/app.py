"""The HTTP app: the spec's routes, the standard A2A JSON-RPC endpoint and agent card,
behind an authentication hook and a request body limit; a request's W3C
`traceparent` header is handed to the adapter (`incoming_traceparent`)."""

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from penguiflow.errors import MissingExtraError
from penguiflow.tracing.propagation import extract, incoming_traceparent

from .auth import AuthHook, Principal
from .guard import DEFAULT_MAX_BODY_BYTES, RequestGuard
from .jsonrpc import agent_card_json, handle_jsonrpc
from .models import A2AMessagePayload, A2ATaskCancelRequest
from .server import A2ARequestError, A2AServerAdapter

__all__ = ["create_a2a_app"]

logger = logging.getLogger("penguiflow_a2a")

T = TypeVar("T")

_FASTAPI_MISSING = "FastAPI is required for the A2A server adapter. Install penguiflow[a2a-server]."


def create_a2a_app(
    adapter: A2AServerAdapter,
    *,
    include_docs: bool = True,
    auth: AuthHook | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    jsonrpc_path: str = "/",
) -> Any:
    """A FastAPI app serving `adapter`.

    Spec routes: `GET /agent`, `POST /message/send`, `POST /message/stream`,
    `POST /tasks/cancel`. Standard A2A: JSON-RPC 2.0 at `jsonrpc_path` and the
    agent card at `/.well-known/agent-card.json` (and the older `agent.json`).
    `auth` runs before anything else on every route (401 when it returns `None`);
    bodies over `max_body_bytes` get 413 before they are parsed.
    """
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, Response, StreamingResponse
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise MissingExtraError(_FASTAPI_MISSING, extra="a2a-server") from exc

    card = adapter.agent_card

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        await adapter.start()
        try:
            yield
        finally:
            await adapter.stop()

    docs: dict[str, Any] = (
        {} if include_docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    )
    app = FastAPI(
        title=card.name,
        description=card.description,
        version=card.version,
        lifespan=lifespan,
        **docs,
    )

    def principal_of(request: Request) -> Principal | None:
        principal: Principal | None = request.scope.get("state", {}).get("principal")
        return principal

    def refused(exc: A2ARequestError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/agent")
    async def agent() -> dict[str, Any]:
        return card.to_payload()

    @app.get("/.well-known/agent-card.json")
    @app.get("/.well-known/agent.json", include_in_schema=False)
    async def agent_card(request: Request) -> dict[str, Any]:
        url = adapter.agent_url.rstrip("/") + jsonrpc_path
        return agent_card_json(adapter, url=url, authenticated=auth is not None)

    @app.post("/message/send")
    async def message_send(payload: A2AMessagePayload, request: Request) -> Any:
        work = adapter.handle_send(payload, principal=principal_of(request))
        try:
            return await _until_disconnect(request, work)
        except A2ARequestError as exc:
            return refused(exc)

    @app.post("/message/stream")
    async def message_stream(payload: A2AMessagePayload, request: Request) -> Any:
        try:
            frames, task_id, context_id = await adapter.stream(
                payload, principal=principal_of(request)
            )
        except A2ARequestError as exc:
            return refused(exc)
        headers = {
            "Cache-Control": "no-cache",
            "X-A2A-Task-Id": task_id,
            "X-A2A-Context-Id": context_id,
        }
        return StreamingResponse(frames, media_type="text/event-stream", headers=headers)

    @app.post("/tasks/cancel")
    async def tasks_cancel(payload: A2ATaskCancelRequest, request: Request) -> Any:
        try:
            return await adapter.cancel(payload, principal=principal_of(request))
        except A2ARequestError as exc:
            return refused(exc)

    @app.post(jsonrpc_path)
    async def jsonrpc(request: Request) -> Response:
        body = await request.body()
        reply = await _until_disconnect(
            request, handle_jsonrpc(adapter, body, principal_of(request))
        )
        if reply.is_empty:
            return Response(status_code=204)
        if reply.stream is not None:
            return StreamingResponse(
                reply.stream,
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        return Response(reply.body, media_type="application/json")

    app.add_middleware(
        RequestGuard, auth=auth, max_body_bytes=max_body_bytes, jsonrpc_path=jsonrpc_path
    )
    app.add_middleware(_TraceContext)
    return app


class _TraceContext:
    """Sets `incoming_traceparent` to the request's `traceparent` header while it is served."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers", ())
            if key.lower() == b"traceparent"
        }
        token = incoming_traceparent.set(extract(headers))
        try:
            await self.app(scope, receive, send)
        finally:
            incoming_traceparent.reset(token)


async def _until_disconnect(request: Any, work: Coroutine[Any, Any, T]) -> T:
    """Await `work`, cancelling it if the client disconnects first.

    A unary call whose caller has gone (a cancelled `RemoteNode`, a closed
    connection) then cancels its trace instead of running on for nobody.
    """
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                task.cancel()
                return

    watcher = asyncio.ensure_future(watch())
    try:
        return await task
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
