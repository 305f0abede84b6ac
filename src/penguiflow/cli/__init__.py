"""The `penguiflow` command line: run planners live, browse and export recorded runs.

`penguiflow --help` lists the commands: `run`, `resume`, `trace list|show|export|view`,
`ui`, `serve`, `worker`, `viz`, `history` and `replay`. Every command finds the store
the same way (`--store URL`, else `PENGUIFLOW_STORE`, else `.penguiflow/state.db`), and
every user mistake is one line on stderr with a non-zero exit status. Needs the `cli`
extra (rich).
"""

from __future__ import annotations

from ._app import main

__all__ = ["main"]
