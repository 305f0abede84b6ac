"""Recorded spans as OTLP/JSON: what an OpenTelemetry collector's HTTP endpoint reads.

Pure Python, no OpenTelemetry package needed. One run becomes one trace: the
trace id is the run id (32 hex characters), each span id is the first 16 hex
characters of the penguiflow span id (ids that are not hex are hashed into hex,
the same way every time). Span attributes keep their names under `penguiflow.`,
LLM and tool spans also carry the GenAI names (`gen_ai.request.model`,
`gen_ai.usage.input_tokens`, `gen_ai.tool.name`, ...), and captured content is
written as JSON text under `penguiflow.content.` unless `include_content=False`.

Usage::

    document = spans_to_otlp(await store.load_run(run_id))
    json.dump(document, file)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..spans import Span, expand_messages, hex_id

__all__ = [
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_INTERNAL",
    "STATUS_CODE_ERROR",
    "STATUS_CODE_OK",
    "STATUS_CODE_UNSET",
    "otlp_attributes",
    "otlp_value",
    "span_to_otlp",
    "spans_to_otlp",
]

SPAN_KIND_INTERNAL = 1
SPAN_KIND_CLIENT = 3
STATUS_CODE_UNSET = 0
STATUS_CODE_OK = 1
STATUS_CODE_ERROR = 2


# penguiflow attribute -> GenAI semantic-convention attribute, by span kind.
_GENAI: dict[str, dict[str, str]] = {
    "llm": {
        "model": "gen_ai.request.model",
        "prompt_tokens": "gen_ai.usage.input_tokens",
        "completion_tokens": "gen_ai.usage.output_tokens",
    },
    "tool": {"tool": "gen_ai.tool.name", "call_id": "gen_ai.tool.call.id"},
}


def spans_to_otlp(
    spans: Iterable[Span], *, service_name: str = "penguiflow", include_content: bool = True
) -> dict[str, Any]:
    """An OTLP/JSON `ExportTraceServiceRequest` holding `spans` (one resource, one scope)."""
    spans = expand_messages(list(spans))
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": otlp_attributes({"service.name": service_name})},
                "scopeSpans": [
                    {
                        "scope": {"name": "penguiflow"},
                        "spans": [
                            span_to_otlp(span, include_content=include_content) for span in spans
                        ],
                    }
                ],
            }
        ]
    }


def span_to_otlp(span: Span, *, include_content: bool = True) -> dict[str, Any]:
    """One span in OTLP/JSON form (times as strings of nanoseconds, enums as numbers)."""
    attributes: dict[str, Any] = {
        "penguiflow.kind": span.kind,
        "penguiflow.name": span.name,
        "penguiflow.run_id": span.run_id,
        "penguiflow.span_id": span.span_id,
        "penguiflow.status": span.status,
        "penguiflow.attempt": span.attempt,
    }
    for key, value in span.attributes.items():
        attributes[f"penguiflow.{key}"] = value
    for key, semconv in _GENAI.get(span.kind, {}).items():
        if span.attributes.get(key) is not None:
            attributes[semconv] = span.attributes[key]
    if span.kind == "llm":
        attributes["gen_ai.operation.name"] = "chat"
    elif span.kind == "tool":
        attributes["gen_ai.operation.name"] = "execute_tool"
    if include_content:
        for key, value in span.content.items():
            attributes[f"penguiflow.content.{key}"] = json.dumps(
                value, ensure_ascii=False, sort_keys=True, default=str
            )
    end = span.end if span.end is not None else span.start
    record: dict[str, Any] = {
        "traceId": hex_id(span.run_id, 32),
        "spanId": hex_id(span.span_id, 16),
        "name": _span_name(span),
        "kind": SPAN_KIND_CLIENT if span.kind == "llm" else SPAN_KIND_INTERNAL,
        "startTimeUnixNano": _nanos(span.start),
        "endTimeUnixNano": _nanos(end),
        "attributes": otlp_attributes(attributes),
        "status": _status(span),
    }
    if span.parent_id is not None:
        record["parentSpanId"] = hex_id(span.parent_id, 16)
    if span.status == "error" and (span.error_type or span.error_message):
        record["events"] = [
            {
                "name": "exception",
                "timeUnixNano": _nanos(end),
                "attributes": otlp_attributes(
                    {"exception.type": span.error_type, "exception.message": span.error_message}
                ),
            }
        ]
    return record


def otlp_attributes(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`{key: value}` as an OTLP key/value list (`None` values are left out)."""
    return [
        {"key": key, "value": otlp_value(value)}
        for key, value in values.items()
        if value is not None
    ]


def otlp_value(value: Any) -> dict[str, Any]:
    """One OTLP `AnyValue`: bool, int (as a string, as OTLP/JSON writes 64-bit ints),
    float, string, array or key/value list; anything else as its `str()`."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [otlp_value(item) for item in value if item is not None]}}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": otlp_attributes({str(k): v for k, v in value.items()})}}
    return {"stringValue": str(value)}


def _span_name(span: Span) -> str:
    if span.kind == "llm":
        return f"chat {span.attributes.get('model') or span.name}"
    if span.kind == "tool":
        return f"execute_tool {span.name}"
    if span.parent_id is None or span.name == span.kind:
        return span.name
    return f"{span.kind} {span.name}"


def _status(span: Span) -> dict[str, Any]:
    if span.status == "ok":
        return {"code": STATUS_CODE_OK}
    if span.status == "error":
        status: dict[str, Any] = {"code": STATUS_CODE_ERROR}
        message = ": ".join(part for part in (span.error_type, span.error_message) if part)
        if message:
            status["message"] = message
        return status
    return {"code": STATUS_CODE_UNSET, "message": span.status}


def _nanos(seconds: float) -> str:
    # Through whole microseconds (what time.time() resolves): a float times 1e9 is
    # off by hundreds of nanoseconds at today's epoch values.
    return str(round(seconds * 1_000_000) * 1000)
