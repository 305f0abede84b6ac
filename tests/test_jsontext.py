"""JSON encoders built once give the text `JSONEncoder.encode` gives."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penguiflow._jsontext import encoder_of

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text() | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)

_OPTIONS = [
    {"ensure_ascii": False, "sort_keys": True, "check_circular": False},
    {"ensure_ascii": False, "check_circular": False},
    {"check_circular": False, "separators": (",", ":")},
    {"ensure_ascii": False, "check_circular": False, "allow_nan": False},
]


@pytest.mark.parametrize("options", _OPTIONS)
@settings(max_examples=150, deadline=None)
@given(value=_values)
def test_the_text_is_that_of_the_encoder(options: dict[str, Any], value: Any) -> None:
    encoder = json.JSONEncoder(**options)
    encode = encoder_of(encoder)

    try:
        expected: str | type[BaseException] = encoder.encode(value)
    except (TypeError, ValueError) as exc:
        expected = type(exc)

    if isinstance(expected, str):
        assert encode(value) == expected
    else:
        with pytest.raises(expected):
            encode(value)


def test_an_encoder_that_checks_for_cycles_is_used_as_it_is() -> None:
    encoder = json.JSONEncoder()
    cycle: list[Any] = []
    cycle.append(cycle)

    assert encoder_of(encoder) == encoder.encode
    with pytest.raises(ValueError, match="Circular reference"):
        encoder_of(encoder)(cycle)


def test_values_json_cannot_hold_raise_type_error() -> None:
    encode = encoder_of(json.JSONEncoder(check_circular=False))

    with pytest.raises(TypeError, match="not JSON serializable"):
        encode({"when": object()})
