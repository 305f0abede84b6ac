"""The broker URLs the shipped buses accept, checked before anything connects.

A URL of the wrong form raises `InvalidBusOptionError` (option `"url"`) listing the
accepted ones, so a typo is reported at once rather than as a timeout later.
`redact` hides a URL's password wherever one is shown.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .errors import InvalidBusOptionError

__all__ = [
    "NATS_FORMS",
    "NATS_SCHEMES",
    "REDIS_FORMS",
    "REDIS_SCHEMES",
    "check_nats_url",
    "check_redis_url",
    "redact",
]

REDIS_SCHEMES = ("redis", "rediss", "unix")
REDIS_FORMS = "redis://HOST[:PORT][/DB], rediss://HOST[:PORT][/DB] (TLS) or unix:///PATH"
NATS_SCHEMES = ("nats", "tls", "ws", "wss")
NATS_FORMS = "nats://HOST[:PORT], tls://HOST[:PORT], ws://HOST[:PORT] or wss://HOST[:PORT]"


def redact(url: str) -> str:
    """`url` with the password of its user part replaced by `***`."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def _wrong(kind: str, url: str, forms: str) -> InvalidBusOptionError:
    return InvalidBusOptionError(
        f"{redact(url)!r} is not a {kind} URL: use {forms}", option="url", value=redact(url)
    )


def check_redis_url(url: str) -> str:
    """`url` if it is a Redis URL `redis.asyncio` can connect to (with a host or path)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise _wrong("Redis", url, REDIS_FORMS) from exc
    if parts.scheme not in REDIS_SCHEMES:
        raise _wrong("Redis", url, REDIS_FORMS)
    if parts.scheme == "unix" and not parts.path.strip("/"):
        raise _wrong("Redis", url, REDIS_FORMS)
    if parts.scheme != "unix" and not parts.hostname:
        raise _wrong("Redis", url, REDIS_FORMS)
    return url


def check_nats_url(url: str) -> str:
    """`url` if it is one NATS server URL with a scheme and a host."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise _wrong("NATS", url, NATS_FORMS) from exc
    if parts.scheme not in NATS_SCHEMES or not parts.hostname or "," in url:
        raise _wrong("NATS", url, NATS_FORMS)
    return url
