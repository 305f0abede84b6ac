"""The flow runtime: `PenguiFlow`, `Context`, graph endpoints, subflows.

The implementation lives in `penguiflow._runtime`; this module is its public face.
"""

from __future__ import annotations

from ._runtime.calls import NoResultError as NoResultError
from ._runtime.context import Context
from ._runtime.controller import BUDGET_EXCEEDED_TEXT as BUDGET_EXCEEDED_TEXT
from ._runtime.controller import DEADLINE_EXCEEDED_TEXT as DEADLINE_EXCEEDED_TEXT
from ._runtime.controller import TOKEN_BUDGET_EXCEEDED_TEXT as TOKEN_BUDGET_EXCEEDED_TEXT
from ._runtime.flow import DEFAULT_QUEUE_MAXSIZE, PenguiFlow, create
from ._runtime.flow import logger as logger
from ._runtime.graph import OPEN_SEA as OPEN_SEA
from ._runtime.graph import ROOKERY as ROOKERY
from ._runtime.graph import CycleError, Floe
from ._runtime.graph import Endpoint as Endpoint
from ._runtime.playbook import PlaybookFactory as PlaybookFactory
from ._runtime.playbook import call_playbook
from ._runtime.traces import TraceCancelled as TraceCancelled

__all__ = [
    "Context",
    "Floe",
    "PenguiFlow",
    "CycleError",
    "call_playbook",
    "create",
    "DEFAULT_QUEUE_MAXSIZE",
]
