"""JsonStreamScanner reads a JSON object as it is generated, whatever the split."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from penguiflow.planner.json_stream import JsonPiece, JsonStreamScanner, Path

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=6), json_values, max_size=5)


def scan(text: str, cuts: list[int]) -> list[JsonPiece]:
    scanner = JsonStreamScanner()
    pieces: list[JsonPiece] = []
    start = 0
    for cut in [*sorted({c % (len(text) + 1) for c in cuts}), len(text)]:
        pieces += scanner.feed(text[start:cut])
        start = cut
    assert scanner.done
    assert not scanner.failed
    return pieces


def leaves(value: Any, path: Path = ()) -> dict[Path, Any]:
    """The strings and scalars of `value` by path, as the scanner should see them."""
    found: dict[Path, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            found.update(leaves(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.update(leaves(item, (*path, index)))
    else:
        found[path] = value
    return found


def rebuilt(pieces: list[JsonPiece]) -> dict[Path, Any]:
    texts: dict[Path, str] = {}
    values: dict[Path, Any] = {}
    for piece in pieces:
        if piece.kind == "text":
            texts[piece.path] = texts.get(piece.path, "") + piece.value
        elif piece.kind == "scalar":
            values[piece.path] = json.loads(piece.value)
    return {**values, **texts}


@settings(max_examples=300, deadline=None)
@given(objects, st.lists(st.integers(0, 10**6), max_size=12), st.booleans())
def test_any_object_split_anywhere_is_read_back_exactly(
    value: dict[str, Any], cuts: list[int], ascii_only: bool
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=None if cuts else 2)
    # An empty string yields no text piece: only the others are expected back.
    expected = {k: v for k, v in leaves(value).items() if v != ""}
    assert rebuilt(scan(text, cuts)) == expected


def test_an_answer_arrives_piece_by_piece_before_the_object_ends() -> None:
    scanner = JsonStreamScanner()
    assert scanner.feed('{"thought": "done", "next_node": nu') == [
        JsonPiece("begin", (), "{"),
        JsonPiece("text", ("thought",), "done"),
    ]
    assert scanner.feed('ll, "args": {"answer": "It is') == [
        JsonPiece("scalar", ("next_node",), "null"),
        JsonPiece("begin", ("args",), "{"),
        JsonPiece("text", ("args", "answer"), "It is"),
    ]
    assert scanner.feed(" 18 \\u00b0C\\") == [JsonPiece("text", ("args", "answer"), " 18 °C")]
    assert scanner.feed('n"}}') == [JsonPiece("text", ("args", "answer"), "\n")]
    assert scanner.done


def test_a_surrogate_pair_split_between_feeds_is_one_character() -> None:
    scanner = JsonStreamScanner()
    pieces = scanner.feed('{"a": "\\ud83d') + scanner.feed('\\ude00!"}')
    assert "".join(p.value for p in pieces if p.kind == "text") == "\U0001f600!"


def test_text_around_the_object_is_ignored() -> None:
    pieces = JsonStreamScanner().feed('```json\n{"a": [1, "x"]}\n```')
    assert [p for p in pieces if p.kind != "begin"] == [
        JsonPiece("scalar", ("a", 0), "1"),
        JsonPiece("text", ("a", 1), "x"),
    ]


def test_text_that_stops_being_json_stops_being_reported() -> None:
    scanner = JsonStreamScanner()
    assert scanner.feed('{"a": "x", oops "b": "y"}') == [
        JsonPiece("begin", (), "{"),
        JsonPiece("text", ("a",), "x"),
    ]
    assert scanner.failed
    assert scanner.feed('"more"') == []
