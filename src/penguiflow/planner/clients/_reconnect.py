"""Sending a request again when the server dropped its connection before answering.

A server may close a kept-alive connection just as a request goes out on it:
llama.cpp's server closes one after each streamed reply, though it announces
keep-alive. Such a request got no answer at all, and the HTTP client has let that
connection go, so sending it again on a fresh one is safe. This is a reconnect, not
a retry of a failed call: it happens once, whatever `max_retries` says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["dropped_before_answering", "reconnecting"]

_T = TypeVar("_T")

# httpcore's words for a connection closed before any byte of a response.
_DROPPED = "without sending a response"


def dropped_before_answering(exc: BaseException) -> bool:
    """Whether `exc` is, or was caused by, a connection the server closed before
    answering: httpx's `RemoteProtocolError` saying so, or aiohttp's
    `ServerDisconnectedError` (raised before a response's headers; a body cut short
    is another error). LiteLLM and the OpenAI SDK wrap either in their own errors."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if name == "ServerDisconnectedError" or (
            name == "RemoteProtocolError" and _DROPPED in str(current)
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


async def reconnecting(send: Callable[[], Awaitable[_T]]) -> _T:
    """`send()`, and once more when the server closed the connection before answering."""
    try:
        return await send()
    except Exception as exc:
        if not dropped_before_answering(exc):
            raise
    return await send()
