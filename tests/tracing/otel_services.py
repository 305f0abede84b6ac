"""The other processes of the cross-process trace test: an A2A agent and a bus worker
flow, each exporting its spans over OTLP/HTTP to `PF_TEST_OTLP_URL` as service
`PF_TEST_SERVICE`."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from penguiflow import Message, Node, NodePolicy, PenguiFlow, create
from penguiflow.tracing import FlowTracer, OTelExporter


def otlp_provider(service: str, url: str) -> TracerProvider:
    """A tracer provider sending each span to `url` as it ends (nothing left to flush)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=url, timeout=5)))
    return provider


def traced(flow: PenguiFlow) -> PenguiFlow:
    """`flow`, its traces exported as this process's service."""
    provider = otlp_provider(os.environ["PF_TEST_SERVICE"], os.environ["PF_TEST_OTLP_URL"])
    FlowTracer.of(flow).sinks.append(OTelExporter(provider))
    return flow


async def answer(message: Message, _ctx: Any) -> Message:
    return message.model_copy(update={"payload": {"answer": message.payload}})


def agent_app() -> Any:
    """An A2A agent whose flow answers `{"answer": payload}`."""
    from penguiflow_a2a import create_a2a_app

    from ..a2a.conftest import adapter_for

    flow = traced(create(Node(answer, name="answer", policy=NodePolicy(validate="none")).to()))
    return create_a2a_app(adapter_for(flow))


async def double(message: Message, _ctx: Any) -> Message:
    return message.model_copy(update={"payload": message.payload * 2})


def worker_flow() -> PenguiFlow:
    """The bus worker's flow: doubles the payload."""
    return traced(create(Node(double, name="double", policy=NodePolicy(validate="none")).to()))
