"""The lifecycle of a flow, as one small state machine."""

from __future__ import annotations

import enum

__all__ = ["FlowState"]


class FlowState(enum.Enum):
    """Where a flow is in its life (`flow.state`).

    CREATED -> RUNNING (`run()`) -> STOPPED (`stop()`) -> RUNNING (`run()` again) ...
    """

    CREATED = "created"  # built, never run: emit() queues messages for the first run()
    RUNNING = "running"  # one worker task per node; cancel() works
    STOPPED = "stopped"  # stop() ran: emit() raises FlowStoppedError until run()
