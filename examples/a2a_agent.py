"""Serve a flow as an A2A agent, then call it from another flow through a RemoteNode.

Needs the extras `a2a-server` and `a2a-client`:
`pip install -e '.[a2a-server,a2a-client]'`, then `python examples/a2a_agent.py`.

The agent (a "summariser" that streams its words, then answers) is served by
uvicorn on 127.0.0.1; a second flow calls it over HTTP with `A2AHttpTransport`,
once unary and once streaming. Loopback is refused by default (outbound URLs
must be public), so the caller allows 127.0.0.1 explicitly.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from penguiflow import Headers, Message, Node, NodePolicy, RemoteNode, create
from penguiflow.transports import A2AHttpTransport
from penguiflow.types import StreamChunk
from penguiflow_a2a import A2AServerAdapter, create_a2a_app

RAW = NodePolicy(validate="none")


async def summarise(message: Message, ctx: Any) -> Message:
    """Stream the first words of the text, then answer with a short summary."""
    words = str(message.payload["text"]).split()[:6]
    for index, word in enumerate(words):
        await ctx.emit_chunk(parent=message, text=word, done=index == len(words) - 1)
    summary = {"summary": " ".join(words) + " ...", "words": len(words)}
    return message.model_copy(update={"payload": summary})


async def main() -> None:
    agent_flow = create(Node(summarise, name="summarise", policy=RAW).to())
    adapter = A2AServerAdapter(
        agent_flow,
        agent_card={
            "name": "summariser",
            "description": "Summarises text, streaming as it goes",
            "skills": [{"name": "summarise", "description": "short summary of a text"}],
        },
        agent_url="http://127.0.0.1",
        default_headers={"tenant": "demo"},
    )
    server = uvicorn.Server(
        uvicorn.Config(create_a2a_app(adapter), host="127.0.0.1", port=0, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    print(f"agent card at {url}.well-known/agent-card.json")

    text = "PenguiFlow nodes are typed async functions wired into a graph of queues"
    async with A2AHttpTransport(allowed_hosts=["127.0.0.1"]) as transport:
        for streaming in (False, True):
            remote = RemoteNode(
                transport=transport,
                skill="summarise",
                agent_url=url,
                name="remote",
                policy=RAW,
                streaming=streaming,
            )
            caller = create(remote.to())
            caller.run()
            await caller.emit(Message(payload={"text": text}, headers=Headers(tenant="demo")))
            words = []
            while True:
                item = await caller.fetch()
                if isinstance(item, Message) and isinstance(item.payload, StreamChunk):
                    words.append(item.payload.text)
                    continue
                break
            await caller.stop()
            mode = "streaming" if streaming else "unary"
            print(f"{mode}: {item['summary']!r} ({len(words)} chunks streamed: {words})")

    server.should_exit = True
    await serving
    print("a2a agent example ran.")


if __name__ == "__main__":
    asyncio.run(main())
