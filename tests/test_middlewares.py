import logging
from typing import Any

import pytest

from penguiflow import FlowEvent, log_flow_events
from penguiflow.debug import format_flow_event

from .test_metrics import make_event


async def test_logs_only_lifecycle_events(caplog: pytest.LogCaptureFixture) -> None:
    middleware = log_flow_events()
    caplog.set_level(logging.DEBUG, logger="penguiflow.flow")
    for kind in ("node_start", "node_success", "node_error", "node_retry", "node_failed"):
        await middleware(make_event(event_type=kind))
    assert [r.getMessage() for r in caplog.records] == ["node_start", "node_success", "node_error"]
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.INFO, logging.ERROR]
    assert caplog.records[0].trace_id == "t1"  # type: ignore[attr-defined]


async def test_custom_logger_levels_and_error_payload(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.custom")
    middleware = log_flow_events(logger, start_level=logging.DEBUG, error_level=logging.WARNING)
    caplog.set_level(logging.DEBUG, logger="tests.custom")
    await middleware(make_event(event_type="node_start"))
    await middleware(make_event(event_type="node_error", extra={"flow_error": {"code": "X"}}))
    assert [r.levelno for r in caplog.records] == [logging.DEBUG, logging.WARNING]
    assert caplog.records[1].error_payload == {"code": "X"}  # type: ignore[attr-defined]


async def test_latency_callback_and_its_failures(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, float]] = []

    def record(kind: str, latency: float, event: FlowEvent) -> None:
        seen.append((kind, latency))

    middleware = log_flow_events(latency_callback=record)
    await middleware(make_event(event_type="node_start"))
    await middleware(make_event(event_type="node_success", latency_ms=12.0))
    await middleware(make_event(event_type="node_error", latency_ms=None))
    assert seen == [("node_success", 12.0)]

    def broken(kind: str, latency: float, event: Any) -> None:
        raise RuntimeError("callback bug")

    caplog.set_level(logging.INFO, logger="penguiflow.flow")
    await log_flow_events(latency_callback=broken)(make_event(event_type="node_success"))
    failures = [
        r for r in caplog.records if r.getMessage() == "log_flow_events_latency_callback_error"
    ]
    assert len(failures) == 1
    assert failures[0].exc_info is not None


def test_format_flow_event_spreads_flow_error() -> None:
    event = make_event(extra={"flow_error": {"code": "NODE_TIMEOUT", "message": "slow"}})
    formatted = format_flow_event(event)
    assert formatted["flow_error"] == {"code": "NODE_TIMEOUT", "message": "slow"}
    assert formatted["flow_error_code"] == "NODE_TIMEOUT"
    assert formatted["flow_error_message"] == "slow"
    assert "flow_error" not in format_flow_event(make_event())
