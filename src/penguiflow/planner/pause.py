"""Pauses: the signal a tool raises, and the records a paused run resumes from."""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._logfmt import LogLine
from ..errors import StateStoreError, exception_text
from ..state.protocol import PlannerStateStore, timeout_option
from .constraints import ConstraintTracker
from .errors import PauseDisabledError, ResumeError, ResumeLoadError
from .events import EventSink
from .models import PlannerPause, PlannerPauseReason, Trajectory

__all__ = [
    "DEFAULT_STORE_TIMEOUT_S",
    "PauseBook",
    "PauseRecord",
    "PauseSignal",
    "PlannerStateMethods",
    "new_pause",
]

logger = logging.getLogger("penguiflow.planner")


@dataclass(slots=True)
class PauseRecord:
    """A snapshot of a paused run: its trajectory, why it paused, its budgets, and the
    run it belongs to (`run`: its id, usage so far and root span, so that a resume in
    any process continues the same run and trace)."""

    trajectory: Trajectory
    reason: PlannerPauseReason
    payload: dict[str, Any]
    constraints: dict[str, Any] | None = None
    run: dict[str, Any] | None = None

    def to_payload(self) -> dict[str, Any]:
        """The record as saved to a state store (`from_payload` reads it back)."""
        data = {
            "trajectory": self.trajectory.serialise(),
            "reason": self.reason,
            "payload": dict(self.payload),
            "constraints": self.constraints,
        }
        if self.run is not None:
            data["run"] = self.run
        return data

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> PauseRecord:
        """Rebuild a record from `to_payload()` output (`KeyError` without a trajectory)."""
        return cls(
            trajectory=Trajectory.from_serialised(data["trajectory"]),
            reason=data.get("reason", "await_input"),
            payload=dict(data.get("payload", {})),
            constraints=data.get("constraints"),
            run=data.get("run") if isinstance(data.get("run"), Mapping) else None,
        )


# Control flow, not an error: it stays outside the `PenguiflowError` tree so that a
# tool catching penguiflow's errors around `ctx.pause()` (for `PauseDisabledError`,
# say) does not swallow the pause. It must stay an `Exception`: a tool that catches
# every `Exception` swallows it, as specified.
class PauseSignal(Exception):
    """Raised by `ctx.pause()` to suspend the run; carries the `PlannerPause`."""

    def __init__(self, pause: PlannerPause) -> None:
        super().__init__(pause.reason)
        self.pause = pause


def new_pause(reason: PlannerPauseReason, payload: Mapping[str, Any] | None) -> PlannerPause:
    """A pause with a fresh resume token (pydantic's `ValidationError` for an unknown reason)."""
    # 128 random bits, shaped like uuid4().hex (32 lowercase hex characters).
    return PlannerPause(
        reason=reason, payload=dict(payload or {}), resume_token=secrets.token_hex(16)
    )


Saver = Callable[[str, dict[str, Any]], Awaitable[None] | None]
Loader = Callable[[str], Awaitable[Mapping[str, Any] | None] | Mapping[str, Any] | None]
Discarder = Callable[[str], object]


DEFAULT_STORE_TIMEOUT_S = 30.0
"""How long a planner waits for one state-store call when the store names no
`timeout_s` of its own."""


@dataclass(frozen=True, slots=True)
class PlannerStateMethods:
    """The planner-state methods of a state store, decided once (`None`: not offered),
    and how long one call may take (`timeout_s`; `None`: no limit)."""

    save: Saver | None = None
    load: Loader | None = None
    discard: Discarder | None = None
    timeout_s: float | None = DEFAULT_STORE_TIMEOUT_S

    @classmethod
    def of(cls, store: object | None) -> PlannerStateMethods:
        """What `store` offers: all of `PlannerStateStore`, some of it, or nothing."""
        if store is None:
            return _NO_STORE
        timeout_s = _timeout_of(store)
        if isinstance(store, PlannerStateStore):
            return cls(
                store.save_planner_state,
                store.load_planner_state,
                store.discard_planner_state,
                timeout_s,
            )
        # A store offering only some of the methods is accepted (the specified planner
        # looks each one up by name and tolerates its absence): take those it has.
        return cls(
            getattr(store, "save_planner_state", None),
            getattr(store, "load_planner_state", None),
            getattr(store, "discard_planner_state", None),
            timeout_s,
        )

    async def call(self, method: Callable[[], Any], what: str) -> Any:
        """Run one store call within `timeout_s`; a call that does not answer in time
        is a `StateStoreError` naming it (a blocking, non-async method cannot be cut
        short)."""
        if self.timeout_s is None:
            return await _maybe_await(method())
        try:
            async with asyncio.timeout(self.timeout_s):
                return await _maybe_await(method())
        except TimeoutError as exc:
            raise StateStoreError(
                f"state store {what} did not answer within {self.timeout_s:g}s"
            ) from exc


def _timeout_of(store: object) -> float | None:
    """The store's own `timeout_s` (ours all have one), else the planner's default."""
    return timeout_option(getattr(store, "timeout_s", DEFAULT_STORE_TIMEOUT_S))


_NO_STORE = PlannerStateMethods()


class PauseBook:
    """A planner's pause records: in memory, and in its state store when it has one.

    `enabled` is the planner's `pause_enabled`. A pause is recorded once, complete
    (the pausing step included), and reported as a `pause` event.
    """

    __slots__ = ("_state_store", "enabled", "events", "methods", "records")

    def __init__(self, state_store: object | None, *, enabled: bool, events: EventSink) -> None:
        self.records: dict[str, PauseRecord] = {}
        self.enabled = enabled
        self.events = events
        self._state_store = state_store
        self.methods = _NO_STORE if state_store is None else PlannerStateMethods.of(state_store)

    @property
    def state_store(self) -> object | None:
        """The durable store, if any; setting it decides again what it offers."""
        return self._state_store

    @state_store.setter
    def state_store(self, store: object | None) -> None:
        self._state_store = store
        self.methods = PlannerStateMethods.of(store)

    def new(self, reason: PlannerPauseReason, payload: Mapping[str, Any] | None) -> PlannerPause:
        """A pause with a fresh token (`PauseDisabledError` when pausing is off)."""
        if not self.enabled:
            raise PauseDisabledError
        return new_pause(reason, payload)

    async def record(
        self,
        pause: PlannerPause,
        trajectory: Trajectory,
        tracker: ConstraintTracker | None,
        run: Mapping[str, Any] | None = None,
    ) -> None:
        """Snapshot the run under the pause's token, save it, and emit the `pause` event."""
        record = PauseRecord(
            trajectory=Trajectory.from_serialised(trajectory.serialise()),
            reason=pause.reason,
            payload=dict(pause.payload),
            constraints=tracker.snapshot() if tracker is not None else None,
            run=dict(run) if run is not None else None,
        )
        store_error = await self.store(pause.resume_token, record)
        extra: dict[str, Any] = {"reason": pause.reason}
        if store_error is not None:
            # Visible to the caller: whether the pause reached the durable store.
            extra["persisted"] = store_error == ""
        self.events.emit_now(
            "pause",
            len(trajectory.steps),
            error=f"state store save failed: {store_error}" if store_error else None,
            extra=extra,
        )

    async def store(self, token: str, record: PauseRecord) -> str | None:
        """Keep the record in memory and save it to the store.

        Returns `None` when there is no store to save to, else the error text of a
        failed save (logged) or `""` on success, so the caller can report it.
        """
        self.records[token] = record
        if self.state_store is None:
            return None
        save = self.methods.save
        if save is None:
            logger.debug("state_store_no_save_method", extra={"token": _token_hint(token)})
            return None
        try:
            payload = record.to_payload()
            await self.methods.call(lambda: save(token, payload), "save_planner_state")
        except Exception as exc:
            _log_store_failure("state_store_save_failed", token, exc)
            return f"{type(exc).__name__}: {exception_text(exc)}"
        logger.debug("pause_record_saved", extra={"token": _token_hint(token)})
        return ""

    async def load(self, token: str) -> PauseRecord:
        """Take the record (memory first, once; then the store). Raises `ResumeError`."""
        record = self.records.pop(token, None)
        if record is not None:
            logger.debug(
                "pause_record_loaded", extra={"token": _token_hint(token), "source": "memory"}
            )
            await self._discard_stored(token)
            return record
        load = self.methods.load
        if load is None:
            raise ResumeError(token, token=token)
        try:
            data = await self.methods.call(lambda: load(token), "load_planner_state")
        except ResumeError:
            raise
        except KeyError as exc:
            # The store's own "unknown or used token" (a `ResumeTokenError`, say).
            raise ResumeError(token, token=token) from exc
        except Exception as exc:
            _log_store_failure("state_store_load_failed", token, exc)
            raise ResumeLoadError(
                f"Failed to load pause record: {exception_text(exc)}", token=token
            ) from exc
        if data is None:
            raise ResumeError(token, token=token)
        try:
            record = PauseRecord.from_payload(data)
        except Exception as exc:  # a stored record this planner cannot read
            _log_store_failure("state_store_record_invalid", token, exc)
            raise ResumeError(
                f"Failed to load pause record: {exception_text(exc)}", token=token
            ) from exc
        logger.debug(
            "pause_record_loaded", extra={"token": _token_hint(token), "source": "state_store"}
        )
        return record

    async def _discard_stored(self, token: str) -> None:
        """A token resumed from memory must not be resumable again from the store."""
        discard = self.methods.discard
        if discard is None:
            return
        try:
            await self.methods.call(lambda: discard(token), "discard_planner_state")
        except Exception as exc:
            _log_store_failure("state_store_discard_failed", token, exc)


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _token_hint(token: str) -> str:
    return f"{token[:8]}..."


def _log_store_failure(message: str, token: str, exc: Exception) -> None:
    fields = {"token": _token_hint(token), "error_type": type(exc).__name__, "error": str(exc)}
    logger.error(LogLine(message), fields, extra=fields)
