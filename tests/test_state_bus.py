from penguiflow.bus import BusEnvelope, MessageBus
from penguiflow.state import RemoteBinding, StateStore, StoredEvent

from .test_metrics import make_event


def test_stored_event_from_flow_event() -> None:
    event = make_event(extra={"exception": "boom"})
    stored = StoredEvent.from_flow_event(event)
    assert (stored.trace_id, stored.ts, stored.kind, stored.node_name, stored.node_id) == (
        "t1",
        1.5,
        "node_success",
        "n",
        "id1",
    )
    assert stored.payload == event.to_payload()
    assert stored.payload is not event.to_payload()


def test_records_compare_by_value() -> None:
    assert RemoteBinding("t", None, "task", "http://a") == RemoteBinding(
        "t", None, "task", "http://a"
    )
    envelope = BusEnvelope("a->b", "a", "b", "t", {"x": 1}, None, None)
    assert envelope.edge == "a->b"


async def test_protocol_subclasses_inherit_noop_methods() -> None:
    class OnlySaves(StateStore):
        def __init__(self) -> None:
            self.saved: list[StoredEvent] = []

        async def save_event(self, event: StoredEvent) -> None:
            self.saved.append(event)

    store = OnlySaves()
    await store.save_event(StoredEvent.from_flow_event(make_event()))
    assert len(store.saved) == 1
    assert await store.load_history("t1") is None
    assert await store.save_remote_binding(RemoteBinding("t", None, "k", "u")) is None

    class Quiet(MessageBus):
        pass

    assert await Quiet().publish(envelope_for_test()) is None


def envelope_for_test() -> BusEnvelope:
    return BusEnvelope("OpenSea->a", "OpenSea", "a", None, 1, None, None)
