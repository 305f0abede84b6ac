"""Concrete `RemoteTransport`s, and the outbound URL policy they apply.

`A2AHttpTransport` needs the `a2a-client` extra (httpx, httpx-sse); it is imported
on first use, so `import penguiflow.transports` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .url_policy import UnsafeURLError, URLPolicy, same_origin

if TYPE_CHECKING:
    from .a2a_http import A2AHttpTransport, RemoteCallError

__all__ = ["A2AHttpTransport", "RemoteCallError", "URLPolicy", "UnsafeURLError", "same_origin"]


def __getattr__(name: str) -> Any:
    if name in ("A2AHttpTransport", "RemoteCallError"):
        from . import a2a_http

        return getattr(a2a_http, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
