"""OTLP/JSON of recorded spans: one run is one trace a collector can read."""

from __future__ import annotations

import json
import re

from penguiflow.spans import Span
from penguiflow.tracing.otlp_json import otlp_value, spans_to_otlp

RUN = "0123456789abcdef0123456789abcdef"
ROOT = "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb"
LLM = "ccccccccccccccccdddddddddddddddd"


def spans() -> list[Span]:
    root = Span(
        run_id=RUN,
        span_id=ROOT,
        parent_id=None,
        kind="run",
        name="ReactPlanner",
        start=1700000000.5,
        end=1700000001.25,
        status="ok",
        attributes={"query": "2+2?", "llm_calls": 1, "cost_usd": 0.002},
    )
    llm = Span(
        run_id=RUN,
        span_id=LLM,
        parent_id=ROOT,
        kind="llm",
        name="gpt-4o",
        start=1700000000.75,
        end=1700000001.0,
        status="error",
        error_type="LLMTimeoutError",
        error_message="too slow",
        attributes={"model": "gpt-4o", "prompt_tokens": 12, "completion_tokens": 3},
        content={"reply": "4"},
    )
    return [root, llm]


def test_a_run_becomes_one_resource_one_scope_one_trace() -> None:
    document = spans_to_otlp(spans())
    (resource,) = document["resourceSpans"]
    assert resource["resource"] == {
        "attributes": [{"key": "service.name", "value": {"stringValue": "penguiflow"}}]
    }
    (scope,) = resource["scopeSpans"]
    assert scope["scope"] == {"name": "penguiflow"}
    root, llm = scope["spans"]
    assert {k: v for k, v in root.items() if k != "attributes"} == {
        "traceId": RUN,
        "spanId": ROOT[:16],
        "name": "ReactPlanner",
        "kind": 1,
        "startTimeUnixNano": "1700000000500000000",
        "endTimeUnixNano": "1700000001250000000",
        "status": {"code": 1},
    }
    assert llm["traceId"] == RUN
    assert llm["parentSpanId"] == ROOT[:16]
    assert llm["name"] == "chat gpt-4o"
    assert llm["kind"] == 3
    assert llm["status"] == {"code": 2, "message": "LLMTimeoutError: too slow"}
    assert llm["events"][0]["name"] == "exception"
    attributes = {item["key"]: item["value"] for item in llm["attributes"]}
    assert attributes["gen_ai.request.model"] == {"stringValue": "gpt-4o"}
    assert attributes["gen_ai.usage.input_tokens"] == {"intValue": "12"}
    assert attributes["gen_ai.usage.output_tokens"] == {"intValue": "3"}
    assert attributes["penguiflow.content.reply"] == {"stringValue": '"4"'}
    json.dumps(document)  # plain JSON all the way down


def test_content_can_be_left_out_and_odd_ids_are_hashed_to_hex() -> None:
    odd = Span(
        run_id="flow-trace-1",
        span_id="x",
        parent_id=None,
        kind="trace",
        name="flow",
        start=1.0,
        content={"secret": "s"},
    )
    (record,) = spans_to_otlp([odd], include_content=False)["resourceSpans"][0]["scopeSpans"][0][
        "spans"
    ]
    assert re.fullmatch(r"[0-9a-f]{32}", record["traceId"])
    assert re.fullmatch(r"[0-9a-f]{16}", record["spanId"])
    assert (
        record["traceId"]
        == spans_to_otlp([odd])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
    )  # the same every time
    assert record["endTimeUnixNano"] == record["startTimeUnixNano"]  # still running
    assert record["status"] == {"code": 0, "message": "running"}
    assert not [a for a in record["attributes"] if a["key"].startswith("penguiflow.content")]


def test_values_map_to_otlp_any_values() -> None:
    assert otlp_value(True) == {"boolValue": True}
    assert otlp_value(7) == {"intValue": "7"}
    assert otlp_value(0.5) == {"doubleValue": 0.5}
    assert otlp_value(["a", 1, None]) == {
        "arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}
    }
    assert otlp_value({"k": None, "n": 2}) == {
        "kvlistValue": {"values": [{"key": "n", "value": {"intValue": "2"}}]}
    }
    assert otlp_value(b"x") == {"stringValue": "b'x'"}
