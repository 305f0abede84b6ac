"""Errors the planner raises, under penguiflow's root `PenguiflowError`.

Each keeps the builtin base that code written for the specified API catches, and the
specified message::

    PenguiflowError
    ├── PlannerError (RuntimeError)             a run cannot go on
    │   ├── ActionRepairError                   no valid action after the repair attempts
    │   ├── PauseDisabledError                  `planner.pause()` with `pause_enabled=False`
    │   └── NoActiveRunError                    `planner.pause()` outside a run
    └── ResumeError (KeyError)                  `resume(token)`: unknown, used or unloadable
        └── ResumeLoadError                     the state store failed (try again later)

`ReactPlanner(...)` without a catalog or an LLM raises penguiflow's
`InvalidArgumentError` (a `ValueError`); a missing LiteLLM or DSPy, its
`MissingExtraError`. The LLM clients' errors (`LLMError` and its family) live in
`penguiflow.planner.clients` and join the same root.
"""

from __future__ import annotations

from ..errors import PenguiflowError

__all__ = [
    "ActionRepairError",
    "NoActiveRunError",
    "PAUSE_DISABLED_MESSAGE",
    "PauseDisabledError",
    "PlannerError",
    "ResumeError",
    "ResumeLoadError",
]


class PlannerError(PenguiflowError, RuntimeError):
    """A planner run cannot go on."""


class ActionRepairError(PlannerError):
    """The LLM did not produce a valid `PlannerAction` within `repair_attempts` calls.

    `attempts` is how many completions were asked for; `last_error` the validation
    error (JSON) of the last reply, or `None` when no completion was asked for.
    """

    def __init__(self, *, attempts: int, last_error: str | None) -> None:
        super().__init__("Planner failed to produce valid JSON after repair attempts")
        self.attempts = attempts
        self.last_error = last_error


PAUSE_DISABLED_MESSAGE = "Pause/resume is disabled for this planner"


class PauseDisabledError(PlannerError):
    """`planner.pause()` on a planner built with `pause_enabled=False`.

    (`ctx.pause()` in a tool raises a plain `RuntimeError` with the same message: the
    error step the LLM reads names the exception's class.)
    """

    def __init__(self) -> None:
        super().__init__(PAUSE_DISABLED_MESSAGE)


class NoActiveRunError(PlannerError):
    """`ReactPlanner.pause()` was called while no run is active."""

    def __init__(self) -> None:
        super().__init__("pause() requires an active planner run")


class ResumeError(PenguiflowError, KeyError):
    """`ReactPlanner.resume(token)` found no pause record to resume.

    The token is unknown or already used (then the error's argument is the token, as
    for a plain `KeyError(token)`), or the state store failed to load it (then the
    message says so and the store's error is the `__cause__`). `token` is set either way.
    """

    def __init__(self, message: str, *, token: str) -> None:
        super().__init__(message)
        self.token = token


class ResumeLoadError(ResumeError):
    """The state store failed to load the pause record: the token may well be valid.

    Still a `KeyError` (a `ResumeError`), as code written for the specified API
    expects, but callers can tell it from an unknown token and try again. The store's
    error is the `__cause__`.
    """
