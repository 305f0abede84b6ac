"""What the trace viewer and the local UI share: assets, escaping, the run summary.

The page templates, stylesheet and scripts are package data under `viewer_assets/`.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from ..spans import RUN_KINDS, RunSummary, Span

__all__ = ["asset", "fill", "json_for_script", "run_summary"]

_PLACEHOLDER = re.compile(r"@@([A-Z]+)@@")

# What JSON may hold verbatim but an HTML script element may not: `</script`, `<!--`
# and, for old parsers, the line separators. All appear only inside JSON strings,
# where the `\uXXXX` form means the same text.
_SCRIPT_UNSAFE = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


@functools.cache
def asset(name: str) -> str:
    """The text of one viewer asset (`run.html`, `viewer.css`, ...), read once."""
    return resources.files("penguiflow.tracing").joinpath("viewer_assets", name).read_text("utf-8")


def fill(template: str, **parts: str) -> str:
    """Replace each `@@NAME@@` of `template` with `parts[NAME]`, in one pass.

    One pass means text put in (span content) is never scanned for placeholders.
    """
    return _PLACEHOLDER.sub(lambda match: parts[match.group(1)], template)


def json_for_script(value: Any) -> str:
    """`value` as JSON that is safe inside an HTML `<script>` element.

    Values JSON cannot hold (NaN, infinities, arbitrary objects) become their `str()`.
    """
    text = json.dumps(_jsonable(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.translate(_SCRIPT_UNSAFE)


def run_summary(spans: Sequence[Span]) -> RunSummary | None:
    """The summary taken from the run's root (its parentless `run`/`trace` span)."""
    roots = [span for span in spans if span.parent_id is None]
    root = next((span for span in roots if span.kind in RUN_KINDS), roots[0] if roots else None)
    return RunSummary.from_root(root, len(spans)) if root is not None else None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return str(value)
