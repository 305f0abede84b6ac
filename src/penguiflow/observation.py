"""Observing flows from outside: hook lists, trace status, lifecycle state.

What servers, workers and tracers build on, instead of a flow's private state::

    from penguiflow.observation import FlowState, RookeryDelivery

    flow.hooks.node_failed.append(on_failure)      # a node failed for good
    flow.hooks.rookery.append(on_result)           # an item reaches Rookery
    flow.hooks.event.append(on_event)              # every FlowEvent
    flow.trace_status(trace_id).done               # nothing left of the trace
    flow.state is FlowState.RUNNING
"""

from __future__ import annotations

from ._runtime.hooks import FlowHooks, RookeryDelivery
from ._runtime.lifecycle import FlowState
from ._runtime.traces import TraceStatus

__all__ = ["FlowHooks", "FlowState", "RookeryDelivery", "TraceStatus"]
