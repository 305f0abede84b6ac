"""Tool sources whose tools can change while a planner lives (an MCP server's, say).

A `Toolset` is anything with `specs` (its tools now) and a `revision` that grows
whenever they change. `ReactPlanner(toolsets=[...])` checks the revisions before
each step and, when one moved, rebuilds its tool table, system prompt and action
schemas from its own catalog plus every toolset's specs. The planner knows nothing
of where the specs come from: `penguiflow.mcp.MCPToolset` is one toolset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..catalog import NodeSpec
from ..errors import InvalidArgumentError

__all__ = ["Toolset", "ToolsetCatalog"]


@runtime_checkable
class Toolset(Protocol):
    """A source of tools for a planner's catalog.

    `specs` are the tools it offers now; `revision` grows (never shrinks) each time
    they change, so a planner can tell cheaply whether to rebuild its catalog. Both
    are read between planner steps, never during a tool call.
    """

    @property
    def specs(self) -> Sequence[NodeSpec]: ...

    @property
    def revision(self) -> int: ...


class ToolsetCatalog:
    """A planner's static catalog plus its toolsets' specs, rebuilt when a revision moves.

    `specs` is the combined catalog (static specs first, then each toolset's, in
    order). `refresh()` returns the new combined catalog when any toolset's revision
    changed since the last look, else `None`.
    """

    __slots__ = ("_revisions", "_static", "specs", "toolsets")

    def __init__(self, static: Sequence[NodeSpec], toolsets: Sequence[Toolset]) -> None:
        for toolset in toolsets:
            if not isinstance(toolset, Toolset):
                raise InvalidArgumentError(
                    "toolsets= takes objects with `specs` and `revision` (a Toolset, e.g. "
                    f"penguiflow.mcp.MCPToolset), got {type(toolset).__name__}"
                )
        self._static = tuple(static)
        self.toolsets = tuple(toolsets)
        self._revisions = tuple(toolset.revision for toolset in self.toolsets)
        self.specs: list[NodeSpec] = self._combined()

    def refresh(self) -> list[NodeSpec] | None:
        """The combined catalog if a toolset changed since the last call, else `None`."""
        revisions = tuple(toolset.revision for toolset in self.toolsets)
        if revisions == self._revisions:
            return None
        self._revisions = revisions
        self.specs = self._combined()
        return self.specs

    def _combined(self) -> list[NodeSpec]:
        specs = list(self._static)
        for toolset in self.toolsets:
            specs.extend(toolset.specs)
        return specs
