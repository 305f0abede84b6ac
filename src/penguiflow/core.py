"""The flow runtime: `PenguiFlow`, `Context`, graph endpoints, subflows.

The implementation lives in `penguiflow.runtime`; this module is its public face.
"""

from __future__ import annotations

from .runtime.context import Context
from .runtime.controller import BUDGET_EXCEEDED_TEXT as BUDGET_EXCEEDED_TEXT
from .runtime.controller import DEADLINE_EXCEEDED_TEXT as DEADLINE_EXCEEDED_TEXT
from .runtime.controller import TOKEN_BUDGET_EXCEEDED_TEXT as TOKEN_BUDGET_EXCEEDED_TEXT
from .runtime.flow import DEFAULT_QUEUE_MAXSIZE, PenguiFlow, create
from .runtime.flow import logger as logger
from .runtime.graph import OPEN_SEA as OPEN_SEA
from .runtime.graph import ROOKERY as ROOKERY
from .runtime.graph import CycleError, Floe
from .runtime.graph import Endpoint as Endpoint
from .runtime.playbook import PlaybookFactory as PlaybookFactory
from .runtime.playbook import call_playbook
from .runtime.traces import TraceCancelled as TraceCancelled

__all__ = [
    "Context",
    "Floe",
    "PenguiFlow",
    "CycleError",
    "call_playbook",
    "create",
    "DEFAULT_QUEUE_MAXSIZE",
]
