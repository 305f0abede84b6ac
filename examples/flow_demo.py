"""Flow demo: routing, fan-out with a join, and streaming, on the embedded defaults.

A support desk triages tickets. A router sends each ticket either to `billing` or to
`research`; `research` asks three specialists in parallel (fan-out) and `join_k`
merges their notes; `reply` streams its answer back chunk by chunk. Each ticket's
trace is recorded in the default state store (`.penguiflow/state.db`, or
`PENGUIFLOW_STORE`). Run it with `python examples/flow_demo.py` (`make demo` runs it
after the planner demo).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys

from pydantic import BaseModel

from penguiflow import (
    Context,
    Headers,
    Message,
    Node,
    NodePolicy,
    PenguiFlow,
    StreamChunk,
    create,
    flow_to_mermaid,
    join_k,
    predicate_router,
)
from penguiflow.state import open_store, store_url
from penguiflow.tracing import Recorder

STORE = store_url()  # $PENGUIFLOW_STORE, else .penguiflow/state.db


def penguiflow_command() -> str:
    """How to call the `penguiflow` command that belongs to this Python (copy-pastable)."""
    script = os.path.join(os.path.dirname(sys.executable), "penguiflow")
    if shutil.which("penguiflow") == script or not os.path.exists(script):
        return "penguiflow"
    return os.path.relpath(script)


class Ticket(BaseModel):
    customer: str
    text: str


class Note(BaseModel):
    author: str
    text: str


def log(step: str, detail: str) -> None:
    print(f"  [{step:<10}] {detail}")


# -- nodes ---------------------------------------------------------------------------


def triage(message: Message) -> str:
    ticket: Ticket = message.payload
    destination = "billing" if "invoice" in ticket.text.lower() else "research"
    log("triage", f"{ticket.customer!r} -> {destination}")
    return destination


async def billing(message: Message, ctx: Context) -> Message:
    ticket: Ticket = message.payload
    log("billing", f"refund issued to {ticket.customer}")
    return message.model_copy(update={"payload": [f"Refund issued to {ticket.customer}."]})


async def research(message: Message, ctx: Context) -> Message:
    log("research", "asking 3 specialists in parallel")
    return message


def specialist(area: str, finding: str) -> Node:
    async def answer(message: Message, ctx: Context) -> Message:
        await asyncio.sleep(0.01)  # pretend to look something up
        log(area, finding)
        return message.model_copy(update={"payload": Note(author=area, text=finding)})

    return Node(answer, name=area, policy=NodePolicy(validate="none"))


async def reply(message: Message, ctx: Context) -> Message:
    notes = message.payload
    lines = [n.text if isinstance(n, Note) else str(n) for n in notes]
    text = " ".join(lines)
    for word in text.split(" "):
        await ctx.emit_chunk(parent=message, text=word + " ")
    await ctx.emit_chunk(parent=message, text="", done=True)
    return message.model_copy(update={"payload": f"answered with {len(lines)} note(s)"})


# -- wiring --------------------------------------------------------------------------


def build() -> PenguiFlow:
    router = predicate_router("triage", triage)
    billing_node = Node(billing, name="billing", policy=NodePolicy(validate="none"))
    research_node = Node(research, name="research", policy=NodePolicy(validate="none"))
    experts = [
        specialist("logs", "The outage started at 09:14 UTC."),
        specialist("status", "A fix was deployed at 09:40 UTC."),
        specialist("account", "Your plan includes an SLA credit."),
    ]
    join = join_k("merge", 3)
    reply_node = Node(reply, name="reply", policy=NodePolicy(validate="none", timeout_s=2))
    flow = create(
        router.to(billing_node, research_node),
        research_node.to(*experts),
        *(expert.to(join) for expert in experts),
        join.to(reply_node),
        billing_node.to(reply_node),
        reply_node.to(),
    )
    return flow


async def main() -> None:
    flow = build()
    print("Flow graph (Mermaid):")
    print(flow_to_mermaid(flow))
    store = open_store(STORE)
    recorder = Recorder(store)
    recorder.attach(flow)
    traces: list[str] = []
    flow.run()
    tickets = [
        Ticket(customer="ada", text="Why was the API down this morning?"),
        Ticket(customer="grace", text="My invoice is charged twice."),
    ]
    try:
        for ticket in tickets:
            print(f"\nTicket from {ticket.customer}: {ticket.text}")
            message = Message(payload=ticket, headers=Headers(tenant="demo"))
            traces.append(message.trace_id)
            await flow.emit(message)
            seqs: list[int] = []
            while True:
                out = await asyncio.wait_for(flow.fetch(), 5)
                if isinstance(out.payload, StreamChunk):
                    chunk = out.payload
                    if not seqs:
                        print(f"  [{'stream':<10}] ", end="")
                    seqs.append(chunk.seq)
                    print(chunk.text, end="", flush=True)  # tokens appear as they arrive
                    continue
                print()
                log("stream", f"{len(seqs)} chunks, seq {seqs[0]}..{seqs[-1]} in order")
                log("done", out.payload)
                break
    finally:
        await flow.stop()
        await recorder.aclose()
        await store.close()
    print(f"\nRecorded {len(traces)} traces in {STORE}. See them with:")
    for trace_id in traces:
        print(f"  {penguiflow_command()} trace view {trace_id}")
    print("\nDemo finished: routing, fan-out + join_k and streaming all ran.")


if __name__ == "__main__":
    asyncio.run(main())
