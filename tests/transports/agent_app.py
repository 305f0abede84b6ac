"""An A2A agent app for a separate server process (`python -m penguiflow_a2a.serve`)."""

from __future__ import annotations

from typing import Any

from penguiflow_a2a import create_a2a_app

from ..a2a.conftest import adapter_for, chatter_flow, echo_flow


def echo_app() -> Any:
    """The echo flow as an A2A app."""
    return create_a2a_app(adapter_for(echo_flow()))


def chatter_app() -> Any:
    """The streaming flow as an A2A app."""
    return create_a2a_app(adapter_for(chatter_flow()))
