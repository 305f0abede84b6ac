import dataclasses
from types import MappingProxyType
from typing import Any

import pytest

from penguiflow.metrics import FlowEvent


def make_event(**overrides: Any) -> FlowEvent:
    fields: dict[str, Any] = {
        "event_type": "node_success",
        "ts": 1.5,
        "node_name": "n",
        "node_id": "id1",
        "trace_id": "t1",
        "attempt": 1,
        "latency_ms": 2.5,
        "queue_depth_in": 3,
        "queue_depth_out": 4,
        "outgoing_edges": 2,
        "queue_maxsize": 64,
        "trace_pending": 5,
        "trace_inflight": 1,
        "trace_cancelled": False,
    }
    fields.update(overrides)
    return FlowEvent(**fields)


def test_event_is_frozen_and_extra_is_read_only_copy() -> None:
    extra = {"k": "v"}
    event = make_event(extra=extra)
    extra["k"] = "changed"
    assert event.extra == {"k": "v"}
    assert isinstance(event.extra, MappingProxyType)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.attempt = 2  # type: ignore[misc]
    assert make_event().extra == {}


def test_to_payload_order_and_extra_override() -> None:
    event = make_event(extra={"attempt": 99, "exception": "boom"})
    payload = event.to_payload()
    assert list(payload) == [
        "ts",
        "event",
        "node_name",
        "node_id",
        "trace_id",
        "latency_ms",
        "q_depth_in",
        "q_depth_out",
        "q_depth_total",
        "outgoing",
        "queue_maxsize",
        "attempt",
        "trace_inflight",
        "trace_cancelled",
        "trace_pending",
        "exception",
    ]
    assert payload["q_depth_total"] == 7
    assert payload["attempt"] == 99
    assert "trace_pending" not in make_event(trace_pending=None).to_payload()
    assert event.queue_depth == 7


def test_error_payload() -> None:
    assert make_event().error_payload is None
    assert make_event(extra={"flow_error": "not a mapping"}).error_payload is None
    payload = make_event(extra={"flow_error": {"code": "X"}}).error_payload
    assert payload == {"code": "X"}
    assert isinstance(payload, MappingProxyType)


def test_metric_samples() -> None:
    samples = make_event(trace_cancelled=True).metric_samples()
    assert samples == {
        "queue_depth_in": 3.0,
        "queue_depth_out": 4.0,
        "queue_depth_total": 7.0,
        "attempt": 1.0,
        "trace_inflight": 1.0,
        "trace_cancelled": 1.0,
        "trace_pending": 5.0,
        "latency_ms": 2.5,
    }
    assert make_event(extra={"latency_ms": "7"}).metric_samples()["latency_ms"] == 7.0
    assert make_event(extra={"latency_ms": "slow"}).metric_samples()["latency_ms"] == 2.5
    lean = make_event(latency_ms=None, trace_pending=None).metric_samples()
    assert "latency_ms" not in lean
    assert "trace_pending" not in lean


def test_tag_values() -> None:
    event = make_event(extra={"flag": True, "n": 3, "obj": object(), "s": "x"})
    assert event.tag_values() == {
        "event_type": "node_success",
        "node_name": "n",
        "node_id": "id1",
        "trace_id": "t1",
        "flag": "True",
        "n": "3",
        "s": "x",
    }
    bare = make_event(node_name=None, node_id=None, trace_id=None).tag_values()
    assert bare == {"event_type": "node_success"}


def test_build_event_gives_the_event_the_constructor_gives() -> None:
    from penguiflow.metrics import build_event

    values = ("node_error", 1.5, "a", "a-id", "t", 2, 3.0, 1, 2, 3, 64, 4, 1, False)
    for extra in ({}, {"exception": "ValueError('x')"}):
        built = build_event(*values, extra)
        assert built == FlowEvent(*values, extra=extra)
        assert built.to_payload() == FlowEvent(*values, extra=extra).to_payload()
        with pytest.raises(TypeError):
            built.extra["new"] = 1  # type: ignore[index]
        with pytest.raises(AttributeError):
            built.attempt = 3  # type: ignore[misc]
