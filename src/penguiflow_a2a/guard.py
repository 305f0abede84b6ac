"""`RequestGuard`: authentication and a body size limit, before any route runs.

A plain ASGI middleware: it answers 401 when the authentication hook refuses the
caller (so no task is ever created for them), 413 when the declared or actual body
exceeds the limit (the body is never parsed), and 400 for a malformed
`Content-Length`. The accepted body is buffered (it is bounded) and replayed to the
app; the principal is left in `scope["state"]["principal"]`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from penguiflow.errors import InvalidArgumentError

from .auth import AuthHook, describe

__all__ = ["RequestGuard", "DEFAULT_MAX_BODY_BYTES"]

logger = logging.getLogger("penguiflow_a2a")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _reply(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Wraps an ASGI app with authentication and a request body limit."""

    def __init__(self, app: ASGIApp, *, auth: AuthHook | None = None, max_body_bytes: int) -> None:
        if max_body_bytes <= 0:
            raise InvalidArgumentError(f"max_body_bytes must be > 0, got {max_body_bytes}")
        self.app = app
        self.auth = auth
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in scope.get("headers", [])
        }
        if self.auth is not None:
            try:
                principal = await self.auth(headers)
            except Exception:
                logger.exception("a2a: authentication hook %s failed", describe(self.auth))
                principal = None
            if principal is None:
                await _reply(
                    send, 401, "authentication required", [(b"www-authenticate", b"Bearer")]
                )
                return
            scope.setdefault("state", {})["principal"] = principal
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _reply(send, 400, "invalid Content-Length header", [])
                return
            if int(declared) > self.max_body_bytes:
                await _reply(send, 413, f"request body over {self.max_body_bytes} bytes", [])
                return
        chunks: list[bytes] = []
        size = 0
        more = scope.get("method") not in ("GET", "HEAD")
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body_bytes:
                await _reply(send, 413, f"request body over {self.max_body_bytes} bytes", [])
                return
            chunks.append(body)
            more = message.get("more_body", False)
        buffered: list[Message] = [
            {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        ]

        async def replay() -> Message:
            if buffered:
                return buffered.pop()
            return await receive()

        await self.app(scope, replay, send)
