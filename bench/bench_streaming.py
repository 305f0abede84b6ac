"""Time to the first answer token: a planner streaming its answer against one that waits.

The local OpenAI-compatible test server writes a finish action whose answer is 200
tokens (4 characters each) at a fixed rate, one token per `TOKEN_S`. Figures, from
interleaved runs in the same process:

* the streamed answer's first chunk: how long after the server sent the token that
  holds the answer's first character the planner emitted its first
  `llm_stream_chunk` event, in tokens' time (target <= 2 tokens);
* time to the first answer text from the start of the run, streamed against not
  streamed (the same reply, sent whole after the same generation time): reported.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

from pydantic import BaseModel

from _common import Result, run_cli
from penguiflow import ModelRegistry, Node, build_catalog
from penguiflow.planner import PlannerEvent, PlannerFinish, ReactPlanner
from penguiflow.planner.clients.openai_compat import OpenAICompatibleClient
from penguiflow.testkit import ScriptedLLMServer, ServerReply

TOKENS = 200
CHARS = 4  # characters per token (one streamed chunk each)
TOKEN_S = 0.005

ANSWER = "".join(f"w{i:03d}" for i in range(TOKENS))  # 200 tokens of 4 characters
FINISH = json.dumps({"thought": "I know it", "next_node": None, "args": {"answer": ANSWER}})
# The streamed event carrying the answer's first character (event 0 is the role chunk).
FIRST_EVENT = 1 + (FINISH.index(ANSWER) // CHARS)
EVENTS = 1 + -(-len(FINISH) // CHARS)  # role chunk and content chunks


class Topic(BaseModel):
    topic: str


class Facts(BaseModel):
    facts: list[str]


async def lookup(args: Topic, ctx: Any) -> Facts:
    return Facts(facts=[])


def planner(client: OpenAICompatibleClient) -> ReactPlanner:
    registry = ModelRegistry()
    registry.register("lookup", Topic, Facts)
    catalog = build_catalog([Node(lookup, name="lookup")], registry)
    return ReactPlanner(llm_client=client, catalog=catalog)


async def streamed(server: ScriptedLLMServer) -> tuple[float, float]:
    """(first chunk after the server sent it, first chunk after the run began), in s."""
    first: list[float] = []

    def hook(event: PlannerEvent) -> None:
        if event.event_type == "llm_stream_chunk" and not first:
            first.append(time.perf_counter())

    async with OpenAICompatibleClient(server.base_url, "scripted-model") as client:
        agent = planner(client)
        agent.hooks.event.append(hook)
        began = time.perf_counter()
        result = await agent.run("Tell me a story")
    assert isinstance(result, PlannerFinish)
    assert result.payload == {"answer": ANSWER}, result.payload
    sent = server.requests[-1].sent_at[FIRST_EVENT]
    return first[0] - sent, first[0] - began


async def waited(server: ScriptedLLMServer) -> float:
    """The answer's arrival after the run began, without streaming, in s."""
    async with OpenAICompatibleClient(server.base_url, "scripted-model") as client:
        agent = planner(client)
        began = time.perf_counter()
        result = await agent.run("Tell me a story")
    assert isinstance(result, PlannerFinish)
    return time.perf_counter() - began


async def _measure(quick: bool) -> list[Result]:
    rounds = 1 if quick else 7
    # Without streaming, the whole reply comes once the server has "generated" it.
    whole = ServerReply(content=FINISH, delay_s=EVENTS * TOKEN_S)
    with (
        ScriptedLLMServer(default=FINISH, chunk_chars=CHARS, chunk_delay_s=TOKEN_S) as live,
        ScriptedLLMServer(default=whole) as batch,
    ):
        await streamed(live)  # warm up both paths
        await waited(batch)
        lags: list[float] = []
        firsts: list[float] = []
        waits: list[float] = []
        for _ in range(rounds):
            lag, first = await streamed(live)
            lags.append(lag)
            firsts.append(first)
            waits.append(await waited(batch))
    lag = statistics.median(lags)
    tokens = lag / TOKEN_S
    first, wait = statistics.median(firsts), statistics.median(waits)
    return [
        Result(
            name=f"first answer chunk after the server sent it ({TOKENS} tokens)",
            subject=lag * 1000,
            floor=TOKEN_S * 1000,
            unit="ms",
            ratio=tokens,
            target="<=2 tokens",
            met=tokens <= 2,
            note=f"ratio = lag in tokens' time (1 token = {TOKEN_S * 1000:g} ms); "
            f"worst of {rounds}: {max(lags) / TOKEN_S:.2f} tokens",
        ),
        Result(
            name="time to first answer text, streamed vs not",
            subject=first * 1000,
            floor=wait * 1000,
            unit="ms",
            ratio=first / wait,
            target="report",
            met=None,
            note=f"not streamed, the answer comes whole after {wait * 1000:.0f} ms",
        ),
    ]


def main(quick: bool = False) -> list[Result]:
    return asyncio.run(_measure(quick))


if __name__ == "__main__":
    sys.exit(run_cli(__doc__ or "", main, "Streaming the answer"))
