"""`A2AHttpTransport`: a `RemoteTransport` that calls any A2A agent over HTTP (JSON-RPC).

`send` is `message/send`, `stream` is `message/stream` (server-sent events), and
`cancel` is `tasks/cancel`, as in A2A protocol 0.3. The request's `agent_url` is the
agent's JSON-RPC endpoint (the `url` of its agent card).

Safety: every URL (also each redirect target) passes a `URLPolicy` first, so
private and loopback targets are refused unless allowed; the transport's
`headers` (credentials such as `Authorization`) are sent only to the origin of the
URL the call started with, never across a redirect to another origin.

Every request carries the caller's trace context (a W3C `traceparent`, see
`penguiflow.tracing.propagation`), so the agent's spans join the caller's trace.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urljoin

import httpx
from httpx_sse import EventSource
from pydantic_core import to_jsonable_python

from ..errors import InvalidArgumentError, PenguiflowError
from ..remote import RemoteCallRequest, RemoteCallResult, RemoteStreamEvent
from ..tracing.propagation import inject
from .a2a_parts import from_parts, to_parts
from .url_policy import URLPolicy, same_origin

__all__ = ["A2AHttpTransport", "RemoteCallError"]

_FAILED_STATES = frozenset({"failed", "canceled", "rejected", "input-required", "auth-required"})
_DONE_CODES = frozenset({-32001, -32002})  # task not found / not cancelable: already over


class RemoteCallError(PenguiflowError, RuntimeError):
    """The remote agent refused or failed the call (`code` is the JSON-RPC or HTTP code)."""

    def __init__(self, message: str, *, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


def _jsonable(value: Any) -> Any:
    return to_jsonable_python(value, fallback=repr)


def _status_text(status: Mapping[str, Any]) -> str:
    message = status.get("message")
    if isinstance(message, Mapping):
        texts = [p.get("text") for p in message.get("parts", []) if p.get("kind") == "text"]
        if texts:
            return " ".join(str(t) for t in texts)
    return ""


class A2AHttpTransport:
    """Calls A2A agents over HTTP; one instance can serve many `RemoteNode`s.

    `headers` are sent with every call to the starting origin (put credentials
    here). `timeout_s` bounds each unary HTTP exchange, `stream_idle_timeout_s`
    the silence allowed on a stream. Use as an async context manager, or call
    `aclose()`, to close the HTTP client it creates.
    """

    def __init__(
        self,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        stream_idle_timeout_s: float = 60.0,
        allow_private: bool = False,
        allowed_hosts: Iterable[str] = (),
        max_redirects: int = 5,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if max_redirects < 0:
            raise InvalidArgumentError(f"max_redirects must be >= 0, got {max_redirects}")
        self._headers = dict(headers or {})
        self._timeout = httpx.Timeout(timeout_s)
        self._stream_timeout = httpx.Timeout(timeout_s, read=stream_idle_timeout_s)
        self._policy = URLPolicy.build(allow_private=allow_private, allowed_hosts=allowed_hosts)
        self._max_redirects = max_redirects
        self._client = client
        self._owns_client = client is None

    async def __aenter__(self) -> A2AHttpTransport:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this transport created it."""
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    # -- HTTP with checked redirects -------------------------------------------------

    @asynccontextmanager
    async def _post(
        self, url: str, body: dict[str, Any], *, stream: bool
    ) -> AsyncIterator[httpx.Response]:
        content = json.dumps(body).encode()
        origin = url
        timeout = self._stream_timeout if stream else self._timeout
        accept = "text/event-stream" if stream else "application/json"
        for _ in range(self._max_redirects + 1):
            await self._policy.check(url)
            headers = {"content-type": "application/json", "accept": accept}
            inject(headers)  # the caller's trace context: the agent's work joins its trace
            if same_origin(url, origin):
                headers.update(self._headers)
            request = self._http().build_request(
                "POST", url, content=content, headers=headers, timeout=timeout
            )
            response = await self._http().send(request, stream=True, follow_redirects=False)
            if response.is_redirect and "location" in response.headers:
                await response.aclose()
                url = urljoin(url, response.headers["location"])
                continue
            try:
                if response.status_code >= 400:
                    await response.aread()
                    raise RemoteCallError(
                        f"A2A agent at {url} answered HTTP {response.status_code}: "
                        f"{response.text[:200]}",
                        code=response.status_code,
                    )
                yield response
            finally:
                await response.aclose()
            return
        raise RemoteCallError(f"more than {self._max_redirects} redirects calling {origin}")

    async def _call(self, url: str, method: str, params: dict[str, Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": uuid.uuid4().hex, "method": method, "params": params}
        async with self._post(url, body, stream=False) as response:
            await response.aread()
            try:
                reply = response.json()
            except ValueError as exc:
                raise RemoteCallError(f"A2A agent at {url} sent invalid JSON: {exc}") from exc
        return _unwrap(reply, url)

    # -- RemoteTransport -------------------------------------------------------------

    async def send(self, request: RemoteCallRequest) -> RemoteCallResult:
        """`message/send`, blocking; polls `tasks/get` if the agent answers early."""
        url = request.agent_url
        result = await self._call(url, "message/send", _send_params(request, blocking=True))
        deadline = time.monotonic() + (request.timeout_s or 300.0)
        delay = 0.05
        while result.get("kind") == "task" and result.get("status", {}).get("state") in (
            "submitted",
            "working",
        ):
            if time.monotonic() > deadline:
                raise RemoteCallError(f"remote task {result.get('id')} did not finish in time")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
            result = await self._call(url, "tasks/get", {"id": result["id"]})
        return RemoteCallResult(
            result=_final_value(result),
            context_id=result.get("contextId"),
            task_id=result.get("id") if result.get("kind") == "task" else result.get("taskId"),
            agent_url=url,
        )

    async def stream(self, request: RemoteCallRequest) -> AsyncIterator[RemoteStreamEvent]:
        """`message/stream`: text artifacts become chunks, the result artifact the result."""
        url = request.agent_url
        body = {
            "jsonrpc": "2.0",
            "id": uuid.uuid4().hex,
            "method": "message/stream",
            "params": _send_params(request, blocking=True),
        }
        async with self._post(url, body, stream=True) as response:
            kind = response.headers.get("content-type", "")
            if not kind.startswith("text/event-stream"):
                await response.aread()
                _unwrap(response.json(), url)  # raises the agent's JSON-RPC error
                raise RemoteCallError(f"A2A agent at {url} did not stream ({kind})")
            async for sse in EventSource(response).aiter_sse():
                if not sse.data:
                    continue
                try:
                    event = _unwrap(json.loads(sse.data), url)
                except ValueError as exc:
                    raise RemoteCallError(f"A2A agent at {url} sent invalid JSON: {exc}") from exc
                converted = _stream_event(event, url)
                if converted is not None:
                    yield converted
                if _is_final(event):
                    return

    async def cancel(self, *, agent_url: str, task_id: str) -> None:
        """`tasks/cancel`; a task that is unknown or already over is not an error."""
        try:
            await self._call(agent_url, "tasks/cancel", {"id": task_id})
        except RemoteCallError as exc:
            if exc.code not in _DONE_CODES:
                raise


def _unwrap(reply: Any, url: str) -> Any:
    if not isinstance(reply, Mapping):
        raise RemoteCallError(f"A2A agent at {url} sent a non-object JSON-RPC reply")
    error = reply.get("error")
    if isinstance(error, Mapping):
        raise RemoteCallError(
            f"A2A agent at {url}: {error.get('message')} ({error.get('code')})",
            code=error.get("code") if isinstance(error.get("code"), int) else None,
            data=error.get("data"),
        )
    result = reply.get("result")
    if not isinstance(result, Mapping):
        raise RemoteCallError(f"A2A agent at {url} sent a reply without a result object")
    return result


def _send_params(request: RemoteCallRequest, *, blocking: bool) -> dict[str, Any]:
    message = request.message
    metadata: dict[str, Any] = {
        "skill": request.skill,
        "callerTraceId": message.trace_id,
        "headers": message.headers.model_dump(mode="json"),
    }
    if message.meta:
        metadata["meta"] = _jsonable(message.meta)
    if message.deadline_s is not None:
        metadata["deadlineSeconds"] = message.deadline_s
    return {
        "message": {
            "kind": "message",
            "role": "user",
            "messageId": uuid.uuid4().hex,
            "parts": to_parts(_jsonable(message.payload)),
            "metadata": metadata,
        },
        "configuration": {"blocking": blocking},
    }


def _final_value(result: Mapping[str, Any]) -> Any:
    if result.get("kind") == "message":
        return from_parts(result.get("parts", []))
    status = result.get("status", {})
    state = status.get("state")
    if state in _FAILED_STATES:
        raise RemoteCallError(
            f"remote task {result.get('id')} {state}: {_status_text(status)}".rstrip(": "),
            data=status.get("message"),
        )
    artifacts = result.get("artifacts") or []
    chosen = None
    for artifact in artifacts:
        meta = artifact.get("metadata") or {}
        if meta.get("penguiflow/role") == "result":
            chosen = artifact
    if chosen is None and artifacts:
        chosen = artifacts[-1]
    return None if chosen is None else from_parts(chosen.get("parts", []))


def _is_final(event: Mapping[str, Any]) -> bool:
    kind = event.get("kind")
    if kind == "message":
        return True
    if kind == "status-update":
        return bool(event.get("final"))
    if kind == "task":
        return event.get("status", {}).get("state") in ("completed", *_FAILED_STATES)
    return False


def _stream_event(event: Mapping[str, Any], url: str) -> RemoteStreamEvent | None:
    kind = event.get("kind")
    if kind == "message":
        return RemoteStreamEvent(
            result=from_parts(event.get("parts", [])),
            done=True,
            context_id=event.get("contextId"),
            task_id=event.get("taskId"),
            agent_url=url,
        )
    if kind == "task":
        state = event.get("status", {}).get("state")
        result = _final_value(event) if state in ("completed", *_FAILED_STATES) else None
        return RemoteStreamEvent(
            context_id=event.get("contextId"), task_id=event.get("id"), agent_url=url, result=result
        )
    ids: dict[str, Any] = {
        "context_id": event.get("contextId"),
        "task_id": event.get("taskId"),
        "agent_url": url,
    }
    if kind == "status-update":
        status = event.get("status", {})
        if status.get("state") in _FAILED_STATES:
            raise RemoteCallError(
                f"remote task {event.get('taskId')} {status.get('state')}: {_status_text(status)}",
                data=status.get("message"),
            )
        return None
    if kind == "artifact-update":
        artifact = event.get("artifact", {})
        parts = artifact.get("parts", [])
        meta = artifact.get("metadata") or {}
        texts = [p for p in parts if p.get("kind") == "text"]
        if meta.get("penguiflow/role") == "result" or len(texts) != len(parts):
            return RemoteStreamEvent(result=from_parts(parts), **ids)
        chunk_meta = meta.get("meta") if "seq" in meta else meta
        return RemoteStreamEvent(
            text="".join(str(p.get("text", "")) for p in texts),
            done=bool(event.get("lastChunk") or meta.get("done")),
            meta=dict(chunk_meta) if isinstance(chunk_meta, Mapping) and chunk_meta else None,
            **ids,
        )
    return None
