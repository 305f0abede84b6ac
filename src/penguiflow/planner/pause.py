"""Pause records: what a paused run needs to resume, in memory and in a state store."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .models import PlannerPause, PlannerPauseReason, Trajectory

__all__ = ["_PauseRecord", "_PlannerPauseSignal", "PauseBook"]

logger = logging.getLogger("penguiflow.planner")


@dataclass(slots=True)
class _PauseRecord:
    """A snapshot of a paused run."""

    trajectory: Trajectory
    reason: PlannerPauseReason
    payload: dict[str, Any]
    constraints: dict[str, Any] | None = None


class _PlannerPauseSignal(Exception):
    """Raised by `ctx.pause()` to suspend the run; carries the `PlannerPause`."""

    def __init__(self, pause: PlannerPause) -> None:
        super().__init__(pause.reason)
        self.pause = pause


def _token_hint(token: str) -> str:
    return f"{token[:8]}..."


def _log_store_failure(message: str, token: str, exc: Exception) -> None:
    logger.error(
        message,
        extra={"token": _token_hint(token), "error": str(exc), "error_type": type(exc).__name__},
    )


def serialise_record(record: _PauseRecord) -> dict[str, Any]:
    """The persisted shape of a pause record."""
    return {
        "trajectory": record.trajectory.serialise(),
        "reason": record.reason,
        "payload": dict(record.payload),
        "constraints": record.constraints,
    }


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class PauseBook:
    """Pause records of one planner: in memory, and in the state store when there is one."""

    __slots__ = ("records", "state_store")

    def __init__(self, state_store: Any | None) -> None:
        self.records: dict[str, _PauseRecord] = {}
        self.state_store = state_store

    async def store(self, token: str, record: _PauseRecord) -> str | None:
        """Keep the record in memory and save it to the store.

        Returns `None` when there is no store to save to, else the error text of a
        failed save (logged) or `""` on success, so the caller can report it.
        """
        self.records[token] = record
        store = self.state_store
        if store is None:
            return None
        save = getattr(store, "save_planner_state", None)
        if save is None:
            logger.debug("state_store_no_save_method", extra={"token": _token_hint(token)})
            return None
        try:
            await _maybe_await(save(token, serialise_record(record)))
        except Exception as exc:
            _log_store_failure("state_store_save_failed", token, exc)
            return f"{type(exc).__name__}: {exc}"
        logger.debug("pause_record_saved", extra={"token": _token_hint(token)})
        return ""

    async def _discard_stored(self, token: str) -> None:
        """A token resumed from memory must not be resumable again from the store."""
        if self.state_store is not None:
            await _discard(self.state_store, token)

    async def load(self, token: str) -> _PauseRecord:
        """Take the record (memory first, once; then the store). Raises `KeyError`."""
        record = self.records.pop(token, None)
        if record is not None:
            logger.debug(
                "pause_record_loaded", extra={"token": _token_hint(token), "source": "memory"}
            )
            await self._discard_stored(token)
            return record
        store = self.state_store
        load = getattr(store, "load_planner_state", None) if store is not None else None
        if load is None:
            raise KeyError(token)
        try:
            data = await _maybe_await(load(token))
            if data is None:
                raise KeyError(token)
            record = _record_from(data)
        except KeyError:
            raise
        except Exception as exc:
            _log_store_failure("state_store_load_failed", token, exc)
            raise KeyError(f"Failed to load pause record: {exc}") from exc
        logger.debug(
            "pause_record_loaded", extra={"token": _token_hint(token), "source": "state_store"}
        )
        return record


async def _discard(store: Any, token: str) -> None:
    discard = getattr(store, "discard_planner_state", None)
    if discard is None:
        return
    try:
        await _maybe_await(discard(token))
    except Exception as exc:
        _log_store_failure("state_store_discard_failed", token, exc)


def _record_from(data: Mapping[str, Any]) -> _PauseRecord:
    return _PauseRecord(
        trajectory=Trajectory.from_serialised(data["trajectory"]),
        reason=data.get("reason", "await_input"),
        payload=dict(data.get("payload", {})),
        constraints=data.get("constraints"),
    )
