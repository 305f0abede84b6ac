"""JSON text from the standard library's encoder, with its C part built once.

`json.JSONEncoder.encode` builds the C encoder anew on every call (parsing nine
options each time), which costs about a microsecond: a noticeable share of a small
prompt message or span record. `encoder_of` builds it once and returns a function
that gives exactly the text `encoder.encode` gives.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any

__all__ = ["encoder_of"]


def encoder_of(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """A function equal to `encoder.encode`, without its per-call set-up.

    Only an encoder without circular-reference checks and without indentation has a
    reusable C part (the checks keep per-call state); any other encoder, or an
    interpreter without the C accelerator, gets `encoder.encode` itself.
    """
    make: Any = getattr(json.encoder, "c_make_encoder", None)  # not in the type stubs
    if make is None or encoder.check_circular or encoder.indent is not None:
        return encoder.encode
    strings: Callable[[str], str] = (
        json.encoder.encode_basestring_ascii
        if encoder.ensure_ascii
        else json.encoder.encode_basestring
    )
    encode_chunks = make(
        None,
        encoder.default,
        strings,
        None,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )
    join = "".join

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return strings(value)
        return join(encode_chunks(value, 0))

    return encode
