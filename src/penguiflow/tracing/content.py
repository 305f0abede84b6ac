"""What captured content a recorder keeps: secrets redacted, sizes capped.

Content is the LLM messages and reply, and tool arguments and results. It is
captured by default for local sinks (the recorder) and can be switched off with
`capture=False` (`ContentPolicy.off()`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

__all__ = ["CONTENT_ATTRIBUTES", "ContentPolicy", "REDACTED"]

REDACTED = "[redacted]"

#: Span attributes that quote content, dropped when content is not captured.
CONTENT_ATTRIBUTES = frozenset({"query", "answer", "thought"})

# Keys whose values are secrets, whatever they hold (matched case-insensitively,
# as a substring: "api_key", "X-Api-Key", "authorization", "db_password"...).
_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[-_]?key|authori[sz]ation|cookie|credential|private[-_]?key",
    re.IGNORECASE,
)
# Secrets that show up inside text: bearer tokens, provider keys, JWTs.
_SECRET_TEXT = re.compile(
    r"(?i:bearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|\bsk-[A-Za-z0-9_-]{16,}"
    r"|\b(?:ghp|gho|ghs|xox[abp])[-_][A-Za-z0-9-]{10,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
)


# What every match of `_SECRET_TEXT` contains: a text without it (most content) is
# not searched by the full pattern; none is shorter than 12 characters.
_SECRET_HINT = re.compile(r"(?i:earer)|sk-|gh[pos]_|xox|AKIA|eyJ")


def _may_hold_secret(text: str) -> bool:
    return len(text) >= 12 and _SECRET_HINT.search(text) is not None


_SCALARS = frozenset({int, float, bool})


@lru_cache(maxsize=4096)
def _secret_key(key: str, extra: tuple[str, ...]) -> bool:
    if _SECRET_KEY.search(key):
        return True
    lowered = key.lower()
    return any(name.lower() in lowered for name in extra)


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    """How content is captured: on or off, redacted, and capped.

    * `capture`: keep content at all (off: spans carry only their attributes).
    * `max_chars`: each string is cut to this many characters (a marker says how
      many were dropped); `max_items` caps lists and mappings the same way.
    * `secret_keys`: extra key names (substrings, any case) whose values are redacted.
    """

    capture: bool = True
    max_chars: int = 4000
    max_items: int = 200
    max_depth: int = 8
    secret_keys: tuple[str, ...] = field(default=())

    @classmethod
    def off(cls) -> ContentPolicy:
        """A policy that captures no content."""
        return cls(capture=False)

    def clean(self, value: Any) -> Any:
        """`value` as JSON data, with secrets redacted and sizes capped."""
        return self._clean(value, 0)

    def clean_attributes(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """A span's attributes as kept: text capped and secrets in it redacted; without
        capture, the attributes that quote content (query, answer, thought) dropped.

        Attribute *names* are ours (`prompt_tokens` is no secret), so unlike `clean`
        no value is redacted for its key.
        """
        kept: dict[str, Any] = {}
        capture = self.capture
        for key, value in attributes.items():
            if value is None or type(value) in _SCALARS:
                kept[key] = value
            elif not capture and key in CONTENT_ATTRIBUTES:
                continue
            elif type(value) is str:
                kept[key] = self._text(value)
            else:
                kept[key] = self._clean(value, 1)
        return kept

    def _is_secret(self, key: str) -> bool:
        return _secret_key(key, self.secret_keys)

    def _text(self, text: str) -> str:
        if _may_hold_secret(text):
            text = _SECRET_TEXT.sub(REDACTED, text)
        if len(text) > self.max_chars:
            dropped = len(text) - self.max_chars
            text = f"{text[: self.max_chars]}… [{dropped} more characters]"
        return text

    def _clean(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self._text(value)
        if depth >= self.max_depth:
            return self._text(repr(value))
        dump = getattr(value, "model_dump", None)
        if callable(dump):
            try:
                value = dump(mode="json")
            except Exception as exc:  # a model that cannot dump itself is shown by repr
                return self._text(f"<{type(value).__name__}: {exc}>")
        if isinstance(value, Mapping):
            cleaned: dict[str, Any] = {}
            for index, (key, item) in enumerate(value.items()):
                if index >= self.max_items:
                    cleaned["…"] = f"{len(value) - self.max_items} more entries"
                    break
                name = str(key)
                cleaned[name] = REDACTED if self._is_secret(name) else self._clean(item, depth + 1)
            return cleaned
        if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
            items = [self._clean(item, depth + 1) for item in list(value)[: self.max_items]]
            if len(value) > self.max_items:
                items.append(f"… {len(value) - self.max_items} more items")
            return items
        return self._text(repr(value))
