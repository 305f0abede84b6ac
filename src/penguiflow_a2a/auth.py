"""Who is calling: the principal an authentication hook returns, and a bearer-token hook."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Principal", "AuthHook", "bearer_token_auth", "describe"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    `tenant`, when set, is forced into every message's `headers.tenant`, and tasks
    are owned by it: another tenant's tasks look exactly like missing ones.
    """

    subject: str
    tenant: str | None = None

    @property
    def owner(self) -> str:
        """The key tasks are owned by: the tenant, else the subject."""
        return self.tenant if self.tenant is not None else f"subject:{self.subject}"


AuthHook = Callable[[Mapping[str, str]], Awaitable[Principal | None]]
"""Gets the request headers (lower-case names); returns the caller, or `None` to refuse.

Runs before the body is read, on every route. An exception is logged and refused.
"""


def bearer_token_auth(tokens: Mapping[str, Principal]) -> AuthHook:
    """A hook accepting `Authorization: Bearer <token>` for the given tokens.

    Tokens are compared in constant time.
    """
    known = [(token.encode(), principal) for token, principal in tokens.items()]

    async def authenticate(headers: Mapping[str, str]) -> Principal | None:
        value = headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        presented = token.strip().encode()
        found: Principal | None = None
        for candidate, principal in known:
            if hmac.compare_digest(candidate, presented):
                found = principal
        return found

    return authenticate


def describe(hook: Any) -> str:
    """A name for a hook in log lines."""
    return getattr(hook, "__qualname__", type(hook).__name__)
