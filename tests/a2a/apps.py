"""A2A apps that tests serve in their own process.

`replica`: one replica of a server sharing its tasks through a state store
(`uvicorn --factory tests.a2a.apps:replica`); environment: `PF_REPLICA_STORE` (a
store URL), `PF_REPLICA_NAMESPACE` (the PostgreSQL schema or Redis prefix),
`PF_REPLICA_NAME`. `echo`: an echo agent with a 64 KiB body limit
(`python -m penguiflow_a2a.serve tests.a2a.apps:echo`).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from penguiflow import Message, Node, NodePolicy, create
from penguiflow.state import open_store
from penguiflow_a2a import A2AServerAdapter, create_a2a_app


async def work(message: Message, _ctx: Any) -> Message:
    """`{"sleep": s}` sleeps first; answers `{"done": payload}`."""
    payload = message.payload
    if isinstance(payload, dict) and "sleep" in payload:
        await asyncio.sleep(float(payload["sleep"]))
    return message.model_copy(update={"payload": {"done": payload}})


def replica() -> Any:
    namespace = os.environ["PF_REPLICA_NAMESPACE"]
    store = open_store(os.environ["PF_REPLICA_STORE"], schema=namespace, prefix=namespace)
    flow = create(Node(work, name="work", policy=NodePolicy(validate="none")).to())
    adapter = A2AServerAdapter(
        flow,
        agent_card={"name": "replica", "description": "one of several", "skills": []},
        agent_url="http://127.0.0.1",
        task_store=store,
        replica=os.environ["PF_REPLICA_NAME"],
        task_poll_s=0.05,
    )
    return create_a2a_app(adapter)


def echo() -> Any:
    flow = create(Node(work, name="work", policy=NodePolicy(validate="none")).to())
    adapter = A2AServerAdapter(
        flow,
        agent_card={"name": "echo", "description": "echoes", "skills": []},
        agent_url="http://127.0.0.1",
    )
    return create_a2a_app(adapter, max_body_bytes=64 * 1024)
