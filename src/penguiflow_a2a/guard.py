"""`RequestGuard`: authentication and a body size limit, before any route runs.

A plain ASGI middleware: it answers 401 when the authentication hook refuses the
caller (so no task is ever created for them), 413 when the declared or actual body
exceeds the limit (the body is never parsed), and 400 for a malformed
`Content-Length` or a JSON body nested deeper than `MAX_JSON_DEPTH` or holding `NaN`
or `Infinity` (not JSON, though Python's parser takes them). On the JSON-RPC route
those answers are JSON-RPC errors. The accepted body is buffered (it is bounded) and
replayed to the app; the principal is left in `scope["state"]["principal"]`.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from penguiflow.errors import InvalidArgumentError

from .auth import AuthHook, describe
from .wire import INVALID_REQUEST, PARSE_ERROR

__all__ = ["RequestGuard", "DEFAULT_MAX_BODY_BYTES", "MAX_JSON_DEPTH", "json_screen"]

logger = logging.getLogger("penguiflow_a2a")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 64
"""The deepest nesting of arrays and objects a request body may have."""

# Strings (skipped whole), brackets, and the non-standard constants Python accepts.
_JSON_TOKEN = re.compile(
    rb'"(?:[^"\\]|\\.)*"|[\[\]{}]|NaN|-?Infinity|-?\d+(?:\.\d+)?[eE][+-]?\d{3,}'
)
# A number whose exponent has three digits or more may not fit a float (1e400).
_BIG_EXPONENT = re.compile(rb"\d[eE][+-]?\d{3,}")


def json_screen(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why `body` is refused before it is parsed, or `None`: nested deeper than
    `max_depth`, or `NaN`/`Infinity` (or a number too large for a float, which
    Python would read as infinity) outside a string. Bodies with few brackets and
    neither word skip the scan."""
    brackets = body.count(b"[") + body.count(b"{")
    if (
        brackets <= max_depth
        and b"NaN" not in body
        and b"Infinity" not in body
        and _BIG_EXPONENT.search(body) is None
    ):
        return None
    depth = 0
    for match in _JSON_TOKEN.finditer(body):
        token = match.group()
        first = token[:1]
        if first in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                return f"JSON nested deeper than {max_depth} levels"
        elif first in (b"]", b"}"):
            depth -= 1
        elif first in (b"N", b"I", b"-") and not token[-1:].isdigit():
            return f"{token.decode()} is not a JSON value"
        elif first != b'"' and not math.isfinite(float(token)):
            return f"{token.decode()[:40]} is too large for a number"
    return None


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _reply(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    await _send_json(send, status, {"detail": detail}, headers)


async def _send_json(
    send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps(payload).encode()
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

    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: AuthHook | None = None,
        max_body_bytes: int,
        jsonrpc_path: str | None = None,
    ) -> None:
        if max_body_bytes <= 0:
            raise InvalidArgumentError(f"max_body_bytes must be > 0, got {max_body_bytes}")
        self.app = app
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.jsonrpc_path = jsonrpc_path

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
                await self._refuse(
                    scope, send, 413, f"request body over {self.max_body_bytes} bytes"
                )
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
                await self._refuse(
                    scope, send, 413, f"request body over {self.max_body_bytes} bytes"
                )
                return
            chunks.append(body)
            more = message.get("more_body", False)
        whole = b"".join(chunks)
        refusal = json_screen(whole) if whole else None
        if refusal is not None:
            await self._refuse(scope, send, 400, refusal)
            return
        buffered: list[Message] = [{"type": "http.request", "body": whole, "more_body": False}]

        async def replay() -> Message:
            if buffered:
                return buffered.pop()
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send, status: int, detail: str) -> None:
        """A refusal in the route's own terms: a JSON-RPC error on the JSON-RPC route,
        `{"detail": ...}` with `status` elsewhere."""
        if self.jsonrpc_path is None or scope.get("path") != self.jsonrpc_path:
            await _reply(send, status, detail, [])
            return
        # An oversized body keeps its 413; a body refused as JSON is a parse error,
        # answered with 200 like every other JSON-RPC error of this route.
        code = INVALID_REQUEST if status == 413 else PARSE_ERROR
        error = {"code": code, "message": detail}
        reply = {"jsonrpc": "2.0", "id": None, "error": error}
        await _send_json(send, 413 if status == 413 else 200, reply, [])
