"""`planner_node`: a `ReactPlanner` as a flow node that an A2A task can talk to over
several turns (a pause asks the user; the follow-up message resumes the run)."""

from __future__ import annotations

import json
from typing import Any

from penguiflow.node import Node, NodePolicy
from penguiflow.planner import PlannerFinish, PlannerPause, ReactPlanner
from penguiflow.planner.chunks import forward_answer
from penguiflow.types import Message

from .server import RESUME_TOKEN_META

__all__ = ["planner_node"]


def _text(payload: Any) -> str:
    return payload if isinstance(payload, str) else json.dumps(payload, default=str)


def planner_node(planner: ReactPlanner, *, name: str = "planner") -> Node:
    """A node running `planner` on each request, served by `A2AServerAdapter`.

    A request's payload is the query (text as is, anything else as JSON). When the
    planner pauses, the A2A task waits in state `input-required` with the pause's
    reason and payload; a follow-up `message/send` carrying that `taskId` resumes
    the run, its text as `user_input`. A finished run answers its `payload`.

    While the planner writes its final answer, the text is streamed as the task's
    chunks (`forward_answer`): `message/stream` clients see it as artifact updates
    of the `stream` artifact before the result arrives.

    Usage::

        flow = create(planner_node(planner).to())
        adapter = A2AServerAdapter(flow, agent_card=card, agent_url=url)
    """

    async def run(message: Message, ctx: Any) -> Message:
        meta = dict(message.meta)
        token = meta.pop(RESUME_TOKEN_META, None)
        result: PlannerFinish | PlannerPause
        async with forward_answer(planner, ctx, message):
            if isinstance(token, str):
                result = await planner.resume(token, user_input=_text(message.payload))
            else:
                result = await planner.run(_text(message.payload))
        answer: Any = result if isinstance(result, PlannerPause) else result.payload
        return message.model_copy(update={"payload": answer, "meta": meta})

    return Node(run, name=name, policy=NodePolicy(validate="none"))
