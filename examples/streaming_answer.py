"""A planner that shows its answer while the model writes it, offline.

A local OpenAI-compatible server (penguiflow's test server, on 127.0.0.1) plays the
model: it streams each reply in pieces of 4 characters, 10 ms apart. The agent calls
one tool, then writes its answer; the answer's `llm_stream_chunk` events are printed
as they arrive, each with the time since the run began, and the final answer follows.
The same events drive `penguiflow run` and the A2A `message/stream` route.

Run it with `python examples/streaming_answer.py`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from pydantic import BaseModel

from penguiflow import tool
from penguiflow.planner import PlannerEvent, PlannerFinish, ReactPlanner
from penguiflow.planner.clients import OpenAICompatibleClient
from penguiflow.testkit import ScriptedLLMServer

ANSWER = "Lisbon is 24 C and sunny: pack light, and bring sunglasses for the afternoon."


class City(BaseModel):
    city: str


class Forecast(BaseModel):
    city: str
    celsius: float
    sky: str


@tool(desc="Today's forecast for a city")
async def forecast(args: City, ctx: object) -> Forecast:
    return Forecast(city=args.city, celsius=24, sky="sunny")


def replies() -> list[str]:
    """What the model would write: a tool call, then the answer."""
    call = {"thought": "I need the forecast", "next_node": "forecast", "args": {"city": "Lisbon"}}
    finish = {"thought": "The forecast answers it", "next_node": None, "args": {"answer": ANSWER}}
    return [json.dumps(call), json.dumps(finish)]


async def main() -> None:
    began = time.perf_counter()
    pieces: list[str] = []

    def show(event: PlannerEvent) -> None:
        if event.event_type != "llm_stream_chunk":
            return
        extra = event.extra
        if extra["done"]:
            print(f"[{(time.perf_counter() - began) * 1000:5.0f} ms] (answer complete)")
            return
        pieces.append(extra["text"])
        print(f"[{(time.perf_counter() - began) * 1000:5.0f} ms] {extra['text']!r}")

    with ScriptedLLMServer(replies(), chunk_chars=4, chunk_delay_s=0.01) as server:
        async with OpenAICompatibleClient(server.base_url, "local-model") as client:
            planner = ReactPlanner(llm_client=client, nodes=[forecast])
            planner.hooks.event.append(show)
            finish = await planner.run("What should I pack for Lisbon today?")
    assert isinstance(finish, PlannerFinish)
    print()
    print(f"streamed in {len(pieces)} chunks: {''.join(pieces)}")
    print(f"final answer: {finish.payload['answer']}")
    if "".join(pieces) != finish.payload["answer"]:
        sys.exit("the streamed text differs from the final answer")


if __name__ == "__main__":
    asyncio.run(main())
