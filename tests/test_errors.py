from penguiflow.errors import FlowError, FlowErrorCode


def test_codes_are_strings() -> None:
    assert [c.value for c in FlowErrorCode] == [
        "NODE_TIMEOUT",
        "NODE_EXCEPTION",
        "TRACE_CANCELLED",
        "DEADLINE_EXCEEDED",
        "HOP_BUDGET_EXHAUSTED",
        "TOKEN_BUDGET_EXHAUSTED",
    ]
    assert FlowErrorCode.NODE_TIMEOUT == "NODE_TIMEOUT"


def test_flow_error_str_and_payload() -> None:
    cause = ValueError("bad input")
    error = FlowError(
        trace_id="t1",
        node_name="parse",
        node_id="n1",
        code=FlowErrorCode.NODE_EXCEPTION,
        message="Node 'parse' raised ValueError: bad input",
        original_exc=cause,
        metadata={"attempt": 2},
    )
    assert (
        str(error)
        == "[NODE_EXCEPTION] Node 'parse' raised ValueError: bad input trace=t1 node=parse"
    )
    assert error.args == ("Node 'parse' raised ValueError: bad input",)
    assert error.code == "NODE_EXCEPTION"
    assert isinstance(error.code, str)
    assert error.exception_type == "ValueError"
    assert error.unwrap() is cause
    assert error.to_payload() == {
        "code": "NODE_EXCEPTION",
        "message": "Node 'parse' raised ValueError: bad input",
        "trace_id": "t1",
        "node_name": "parse",
        "node_id": "n1",
        "exception_type": "ValueError",
        "metadata": {"attempt": 2},
    }
    assert list(error.to_payload()) == [
        "code",
        "message",
        "trace_id",
        "node_name",
        "node_id",
        "exception_type",
        "metadata",
    ]


def test_flow_error_minimal_payload_and_custom_code() -> None:
    error = FlowError(trace_id=None, node_name=None, code="CUSTOM", message="  odd  ")
    assert error.to_payload() == {"code": "CUSTOM", "message": "  odd  "}
    assert str(error) == "[CUSTOM]   odd"  # only surrounding whitespace is stripped
    assert error.metadata == {}
    assert error.exception_type is None


def test_from_exception_message_fallbacks() -> None:
    error = FlowError.from_exception(
        trace_id="t", node_name="n", node_id=None, exc=TimeoutError(), code="NODE_TIMEOUT"
    )
    assert error.message == "TimeoutError"
    error = FlowError.from_exception(
        trace_id="t", node_name="n", node_id=None, exc=KeyError("k"), code="X"
    )
    assert error.message == "'k'"
    error = FlowError.from_exception(
        trace_id="t", node_name="n", node_id=None, exc=KeyError("k"), code="X", message="custom"
    )
    assert error.message == "custom"


def test_metadata_is_copied() -> None:
    meta = {"a": 1}
    error = FlowError(trace_id=None, node_name=None, code="X", message="m", metadata=meta)
    meta["a"] = 2
    assert error.metadata == {"a": 1}
