"""`Calls`: traces whose results one caller has claimed (`PenguiFlow.call`).

A claimed trace's Rookery items go to its caller instead of the shared Rookery
queue that `fetch()` reads, so concurrent `call()`s never take each other's results
and nothing is left behind for `fetch()`. The first of these settles a claim: a
result, a `FlowError` (a node failed for good), or the trace ending without either.
Later items of the trace (another branch's result) are dropped until the trace is
done, when the claim is forgotten.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..errors import FlowError, InvalidArgumentError, PenguiflowError
from ..types import Message, StreamChunk
from .traces import TraceCancelled

__all__ = ["Calls", "Claim", "NoResultError"]

logger = logging.getLogger("penguiflow.core")


class NoResultError(PenguiflowError, LookupError):
    """A trace awaited by `call()` ended without a result reaching Rookery (every
    branch returned `None`, or a router sent it nowhere)."""

    def __init__(self, trace_id: str) -> None:
        super().__init__(
            f"trace {trace_id} ended without a result: no node sent anything to Rookery"
        )
        self.trace_id = trace_id


class Claim:
    """One caller's claim on a trace: settled once, by its first outcome."""

    __slots__ = ("_outcome", "ended", "released", "trace_id")

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        self._outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.ended = False  # the trace has nothing left pending
        self.released = False  # the caller has stopped waiting

    @property
    def settled(self) -> bool:
        """Whether the claim has its outcome."""
        return self._outcome.done()

    def settle(self, item: Any) -> None:
        """The trace's result (or its `FlowError`), if it is the first outcome."""
        if self._outcome.done():
            logger.debug(
                "flow_call_extra_result",
                extra={"event": "flow_call_extra_result", "trace_id": self.trace_id},
            )
        else:
            self._outcome.set_result(item)

    def fail(self, error: BaseException) -> None:
        """End the wait with `error` (raised by `wait`), if nothing settled it yet."""
        if not self._outcome.done():
            self._outcome.set_exception(error)

    async def wait(self) -> Any:
        """The outcome: the result, or the `FlowError` raised."""
        # shield: a caller's timeout or cancellation must not cancel the future, which
        # the engine may still settle.
        item = await asyncio.shield(self._outcome)
        if isinstance(item, FlowError):
            raise item
        return item


class Calls:
    """The claims of one flow, by trace id (engine part: the dispatcher hands claimed
    Rookery items here, the node worker a failure, the trace book a trace's end)."""

    __slots__ = ("claims",)

    def __init__(self) -> None:
        # Read it, never change it: the hot path tests `calls.claims` (a plain dict is
        # cheaper to test than a `__bool__` method) before it calls anything here.
        self.claims: dict[str, Claim] = {}

    def open(self, trace_id: str) -> Claim:
        """Claim the trace's results; `InvalidArgumentError` if another call has."""
        if trace_id in self.claims:
            raise InvalidArgumentError(
                f"trace {trace_id} is already awaited by another call(); "
                "give each call() its own message"
            )
        claim = self.claims[trace_id] = Claim(trace_id)
        return claim

    def release(self, claim: Claim) -> None:
        """The caller stopped waiting: forget the claim now if its trace is done, else
        when it is (its later items are dropped until then)."""
        claim.released = True
        if claim.ended and self.claims.get(claim.trace_id) is claim:
            del self.claims[claim.trace_id]

    def discard(self, claim: Claim) -> None:
        """Forget a claim whose message never entered the flow."""
        if self.claims.get(claim.trace_id) is claim:
            del self.claims[claim.trace_id]

    def take(self, item: Any, trace_id: str | None) -> bool:
        """Hand a Rookery item to the claim on its trace; False if none claims it.

        A claimed trace's stream chunks are dropped: `call()` returns the result, and
        streams are read with `emit` and `fetch`.
        """
        if trace_id is None:
            return False
        claim = self.claims.get(trace_id)
        if claim is None:
            return False
        if not (isinstance(item, Message) and isinstance(item.payload, StreamChunk)):
            claim.settle(item)
        return True

    def failed(self, error: FlowError) -> bool:
        """Settle the claim on the error's trace with it; False if none claims it."""
        claim = self.claims.get(error.trace_id) if error.trace_id is not None else None
        if claim is None:
            return False
        claim.settle(error)
        return True

    def ended(self, trace_id: str, *, cancelled: bool) -> None:
        """The trace has nothing left pending: a claim still waiting gets no result."""
        claim = self.claims.get(trace_id)
        if claim is None:
            return
        claim.ended = True
        if not claim.settled:
            claim.fail(TraceCancelled(trace_id) if cancelled else NoResultError(trace_id))
        if claim.released:
            del self.claims[trace_id]

    def abort(self, error_for: type[PenguiflowError], text: str) -> None:
        """Fail every waiting claim (the flow is stopping) and forget them all."""
        for claim in self.claims.values():
            claim.fail(error_for(text.format(trace_id=claim.trace_id)))
        self.claims.clear()
