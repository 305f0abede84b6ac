"""The `response_format` of an action request, generated from the catalog.

The generic action schema (`PlannerAction.model_json_schema()`) lets a model skip
the one decision that matters: `next_node` has a default, and `args` is any object.
A constrained model then finishes early, or puts the arguments of the tool it
meant to call into a finish. The catalog schema leaves it no such way out:

* `thought`, `next_node` and `args` are required, in that order;
* `next_node` is one of the tool names, or null to finish;
* `args` are the arguments of one of the tools (each tool's own schema), or a
  finish's `{"answer": ...}` with a non-empty answer;
* an optional parallel `plan` (with `next_node` null and `args` `{}`) holds named
  calls, each with that tool's arguments, and an optional `join` likewise;
* the thought and the answer are capped (`maxLength`), so a constrained model
  cannot run away.

It is one object rather than one branch per tool: a constrained decoder keeps
every branch that still matches alive, and all would share the thought. That a
name goes with its own tool's arguments is checked by the planner (the arguments
are validated before a call, and a finish holding a tool's arguments is sent back
by `FinishCheck`).

One case defeats that: a model that named a tool and then wrote another tool's
arguments (a constrained decoder that began `args` with a key of the wrong tool is
held to that tool's arguments), and does so again after being told. After a step
whose arguments did not validate, the next request holds that tool's name to its own
arguments: the schema is two branches, that tool with its arguments, or another
tool with its own (`ActionSchemas.holding`, `held_action_schema`); that one reply
is a call, not a finish. Two branches double the decoder's work on the thought for
that one request only.

A model can also settle into a loop: at temperature 0 it copies its last action, so
the same call comes back with the same result until the budget runs out. After the
same call returned the same result twice in a row, the next request is a finish
(`ActionSchemas.finishing`, `finish_action_schema`): two steps brought nothing new,
and a model left free to choose wandered into unrelated tools. After the same tool
failed twice in a row (a model walked through customer ids 1042, 1043, ... where the
order had to be looked up first), the next request leaves that tool out
(`ActionSchemas.without`, `catalog_action_schema(..., without=...)`): that reply
finishes or calls another tool. The request after either is back to the catalog
schema.

A server that refuses a feature of that schema (`anyOf`, `const`, `maxLength`...)
is met with simpler ones, in order: the same decision without per-tool arguments
(`flat`), the generic action schema (`generic`), then no `response_format` at all.
Replies are parsed into `PlannerAction` whichever schema was sent.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from .._logfmt import LogLine
from ..catalog import NodeSpec
from .clients.retry import LLMRequestError
from .models import action_schema

__all__ = [
    "ANSWER_MAX_CHARS",
    "THOUGHT_MAX_CHARS",
    "ActionSchemas",
    "SchemaLevel",
    "catalog_action_schema",
    "finish_action_schema",
    "held_action_schema",
    "rejects_schema",
]

logger = logging.getLogger("penguiflow.planner")

SchemaLevel = Literal["catalog", "flat", "generic", "none"]
_LEVELS: tuple[SchemaLevel, ...] = ("catalog", "flat", "generic", "none")

#: Caps on generated strings: a thought, and a finish's answer. A tool's string
#: arguments keep the caps of its own schema (a field's `max_length`): a cap is a
#: chain of grammar rules per field to a constrained decoder.
THOUGHT_MAX_CHARS = 300
ANSWER_MAX_CHARS = 1000

# What a server says when it refuses the schema rather than the request as a whole.
_REJECTION = re.compile(
    r"schema|response_format|grammar|anyof|oneof|const\b|maxlength|enum|"
    r"not supported|unsupported|\$ref|\$defs",
    re.IGNORECASE,
)


def rejects_schema(exc: BaseException) -> bool:
    """Whether `exc` is a server refusing the `response_format` it was sent (a 400 or
    422 naming the schema or one of its features)."""
    if not isinstance(exc, LLMRequestError):
        return False
    status = exc.status
    if status is not None and status not in (400, 422):
        return False
    return bool(_REJECTION.search(str(exc)))


class ActionSchemas:
    """The action `response_format` a planner sends, and its fallbacks.

    `current` is what to send now (`None` once even the generic schema was
    refused). `fall_back(exc)` moves one level down after a refusal, logging a
    WARNING `action_schema_fallback` that names both levels and the error.
    """

    __slots__ = ("_formats", "_names", "_specs", "_variants", "level")

    def __init__(self, specs: Sequence[NodeSpec], *, level: SchemaLevel = "catalog") -> None:
        self.level: SchemaLevel = level
        self._specs = tuple(specs)
        self._names = frozenset(spec.name for spec in specs)
        self._formats = _formats_of(specs)
        # The catalog level's narrowed formats (held, without a tool, finish), built
        # on first use.
        self._variants: dict[tuple[str, str], dict[str, Any]] = {}
        if self._formats[level] is None and level in ("catalog", "flat"):
            self.level = "generic"  # no tools: nothing to choose between

    @property
    def current(self) -> dict[str, Any] | None:
        """The `response_format` to send (do not mutate)."""
        return self._formats[self.level]

    def format(self, level: SchemaLevel) -> dict[str, Any] | None:
        """The `response_format` of `level` (do not mutate)."""
        return self._formats[level]

    def holding(self, name: str | None) -> dict[str, Any] | None:
        """What to send when the last step's arguments for tool `name` did not
        validate: at the catalog level, `current` with `name` held to its own
        arguments (see the module docstring); else `current` itself."""
        if name is None or name not in self._names:
            return self.current
        return self._variant("held", name, lambda: held_action_schema(self._specs, name))

    def without(self, name: str | None) -> dict[str, Any] | None:
        """What to send when tool `name` failed in each of the last two steps: at the
        catalog level, `current` without that tool (a finish or another tool's call);
        else `current` itself."""
        if name is None or name not in self._names or len(self._names) < 2:
            return self.current
        return self._variant(
            "without", name, lambda: catalog_action_schema(self._specs, without=name)
        )

    def finishing(self) -> dict[str, Any] | None:
        """What to send when the same call returned the same result twice in a row:
        at the catalog level, a finish with its answer; else `current` itself."""
        return self._variant("finish", "", finish_action_schema)

    def _variant(
        self, kind: str, name: str, build: Callable[[], dict[str, Any]]
    ) -> dict[str, Any] | None:
        if self.level != "catalog":
            return self.current
        variant = self._variants.get((kind, name))
        if variant is None:
            variant = self._variants[kind, name] = _response_format(build())
        return variant

    def sent(self, response_format: Mapping[str, Any] | None) -> bool:
        """Whether `response_format` is one this level sends (`current` or one of its
        narrowed formats): a server refusing it moves the planner down a level."""
        if response_format is None:
            return False
        return response_format is self.current or any(
            response_format is variant for variant in self._variants.values()
        )

    def fall_back(self, exc: BaseException) -> bool:
        """After `exc` refused the current schema: move to the next simpler one.

        Returns whether there was one to move to (at `"none"` there is not).
        """
        index = _LEVELS.index(self.level)
        if index + 1 >= len(_LEVELS):
            return False
        before, after = self.level, _LEVELS[index + 1]
        while after in ("catalog", "flat") and self._formats[after] is None:
            after = _LEVELS[_LEVELS.index(after) + 1]
        self.level = after
        fields = {"from": before, "to": after, "error": str(exc)[:300]}
        logger.warning(LogLine("action_schema_fallback"), fields, extra=fields)
        return True


# The formats of each catalog, by its identity: a planner built per request reuses
# those of the catalog it shares (as `catalog_prompt` does for the system prompt).
# Each value keeps its specs alive, so their ids cannot be reused while it exists.
_FORMATS: dict[tuple[int, ...], tuple[tuple[NodeSpec, ...], dict[SchemaLevel, Any]]] = {}


def _formats_of(specs: Sequence[NodeSpec]) -> dict[SchemaLevel, dict[str, Any] | None]:
    """Every level's `response_format` for `specs`, built once per catalog."""
    key = tuple(map(id, specs))
    cached = _FORMATS.get(key)
    if cached is not None:
        return cached[1]
    formats: dict[SchemaLevel, dict[str, Any] | None] = {
        "catalog": _response_format(catalog_action_schema(specs)) if specs else None,
        "flat": _response_format(catalog_action_schema(specs, flat=True)) if specs else None,
        "generic": action_schema(),
        "none": None,
    }
    if len(_FORMATS) >= 256:
        _FORMATS.clear()
    _FORMATS[key] = (tuple(specs), formats)
    return formats


def _response_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "planner_action", "schema": schema}}


def catalog_action_schema(
    specs: Sequence[NodeSpec], *, flat: bool = False, without: str | None = None
) -> dict[str, Any]:
    """The JSON schema of a reply for this catalog (see the module docstring).

    `flat` leaves out the per-tool arguments (`anyOf`, `const`) and the length caps:
    `next_node` is still required and one of the tool names or null. `without`
    leaves that tool out of the per-tool schema (a reply that does not call it).
    """
    names = [spec.name for spec in specs]
    if flat:
        return {
            "type": "object",
            "properties": {
                "thought": {"type": "string"},
                "next_node": {"type": ["string", "null"], "enum": [*names, None]},
                "args": {"type": ["object", "null"]},
                "plan": {
                    "type": ["array", "null"],
                    "items": {
                        "type": "object",
                        "properties": {
                            "node": {"type": "string", "enum": names},
                            "args": {"type": "object"},
                        },
                        "required": ["node", "args"],
                    },
                },
                "join": {
                    "type": ["object", "null"],
                    "properties": {
                        "node": {"type": "string", "enum": names},
                        "args": {"type": "object"},
                    },
                    "required": ["node"],
                },
            },
            "required": ["thought", "next_node", "args"],
        }
    defs: dict[str, Any] = {}
    tool_args = {spec.name: _embed(spec, defs) for spec in specs if spec.name != without}
    schema = _decision_schema(tool_args)
    if defs:
        schema["$defs"] = defs
    return schema


def held_action_schema(specs: Sequence[NodeSpec], name: str) -> dict[str, Any]:
    """The reply after tool `name` was called with arguments that did not validate: a
    call of `name` with its own arguments, or a call of another tool with that tool's.

    Not a finish: a model that has just been told its call was refused and finishes
    at once reports a call it never made (it finished with the refused arguments).
    The request after this one may finish as usual.
    """
    defs: dict[str, Any] = {}
    tool_args = {spec.name: _embed(spec, defs) for spec in specs}
    thought = {"type": "string", "maxLength": THOUGHT_MAX_CHARS}
    branches: list[dict[str, Any]] = [_call_schema(thought, {"const": name}, tool_args[name])]
    others = [n for n in tool_args if n != name]
    if others:
        args = {"anyOf": [tool_args[n] for n in others]}
        branches.append(_call_schema(thought, {"enum": others}, args))
    schema: dict[str, Any] = {"anyOf": branches}
    if defs:
        schema["$defs"] = defs
    return schema


def finish_action_schema() -> dict[str, Any]:
    """A reply that finishes: a thought, `next_node` null and `{"answer": ...}`."""
    return {
        "type": "object",
        "properties": {
            "thought": {"type": "string", "maxLength": THOUGHT_MAX_CHARS},
            "next_node": {"type": "null"},
            "args": _FINISH,
        },
        "required": ["thought", "next_node", "args"],
        "additionalProperties": False,
    }


def _call_schema(
    thought: dict[str, Any], next_node: dict[str, Any], args: dict[str, Any]
) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"thought": thought, "next_node": next_node, "args": args},
        "required": ["thought", "next_node", "args"],
        "additionalProperties": False,
    }


def _decision_schema(tool_args: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The one-object schema of a reply, given each tool's arguments schema."""
    calls = [
        {
            "type": "object",
            "properties": {"node": {"const": name}, "args": args},
            "required": ["node", "args"],
            "additionalProperties": False,
        }
        for name, args in tool_args.items()
    ]
    # One object, not one branch per tool: a constrained decoder keeps every branch
    # that matches so far alive, and all of them share the thought, so branches
    # cost each generated token of it once per tool.
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "thought": {"type": "string", "maxLength": THOUGHT_MAX_CHARS},
            "next_node": {"enum": [*tool_args, None]},
            # `{}` goes with a parallel plan (whose calls carry their own arguments).
            "args": {"anyOf": [_FINISH, *tool_args.values(), _EMPTY]},
            "plan": {"type": "array", "minItems": 1, "items": {"anyOf": calls}},
            "join": {"anyOf": [{"type": "null"}, *calls]},
        },
        "required": ["thought", "next_node", "args"],
        "additionalProperties": False,
    }
    return schema


_EMPTY: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
_FINISH: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "minLength": 1, "maxLength": ANSWER_MAX_CHARS}},
    "required": ["answer"],
}


def _embed(spec: NodeSpec, defs: dict[str, Any]) -> dict[str, Any]:
    """The tool's arguments schema, with its `$defs` moved into `defs` under names of
    the tool's own (so two tools' `Item` models cannot clash) and strings capped."""
    schema = copy.deepcopy(spec.args_model.model_json_schema())
    local = schema.pop("$defs", {})
    prefix = f"{spec.name}__"
    renamed = {f"#/$defs/{name}": f"#/$defs/{prefix}{name}" for name in local}
    for name, definition in local.items():
        defs[prefix + name] = _rewrite(definition, renamed)
    embedded: dict[str, Any] = _rewrite(schema, renamed)
    return embedded


def _rewrite(node: Any, renamed: Mapping[str, str]) -> Any:
    if isinstance(node, list):
        return [_rewrite(item, renamed) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = renamed.get(value, value)
        elif key == "title":
            continue  # a schema's title only costs tokens and grammar rules
        elif key in ("properties", "patternProperties") and isinstance(value, dict):
            out[key] = {name: _rewrite(item, renamed) for name, item in value.items()}
        else:
            out[key] = _rewrite(value, renamed)
    return out
