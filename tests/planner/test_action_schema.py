"""The action schema a planner sends is generated from its catalog, and falls back
when a server refuses it."""

from __future__ import annotations

import json
import logging
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog
from penguiflow.planner import PlannerAction, PlannerFinish, ReactPlanner
from penguiflow.planner.action_schema import (
    ANSWER_MAX_CHARS,
    THOUGHT_MAX_CHARS,
    ActionSchemas,
    catalog_action_schema,
    finish_action_schema,
    held_action_schema,
    rejects_schema,
)
from penguiflow.planner.clients.openai_compat import OpenAICompatibleClient
from penguiflow.planner.clients.retry import LLMRequestError, LLMServerError
from penguiflow.testkit import ScriptedLLMClient
from penguiflow.testkit.llm_server import ScriptedLLMServer, ServerReply

from .conftest import act


class Item(BaseModel):
    name: str
    quantity: int


class Order(BaseModel):
    customer: str
    items: list[Item]


class City(BaseModel):
    city: str
    units: str = "metric"


class Other(BaseModel):
    item: Item  # another tool's `Item`: its own definition, under its own name


class Weather(BaseModel):
    celsius: float


def tools() -> list[Any]:
    async def place_order(args: Order, ctx: Any) -> Weather:
        return Weather(celsius=0)

    async def get_weather(args: City, ctx: Any) -> Weather:
        return Weather(celsius=18.5)

    async def inspect(args: Other, ctx: Any) -> Weather:
        return Weather(celsius=1)

    registry = ModelRegistry()
    registry.register("place_order", Order, Weather)
    registry.register("get_weather", City, Weather)
    registry.register("inspect", Other, Weather)
    return build_catalog(
        [Node(f, name=f.__name__) for f in (place_order, get_weather, inspect)], registry
    )


def valid(schema: dict[str, Any], reply: dict[str, Any]) -> bool:
    try:
        jsonschema.validate(reply, schema)
    except jsonschema.ValidationError:
        return False
    return True


async def schemas_sent(server: ScriptedLLMServer, *replies: Any) -> list[dict[str, Any]]:
    """Run a planner over `tools()` against `server` answering `replies`, to a finish;
    the action schema of each request it sent."""
    server.add(*replies)
    async with OpenAICompatibleClient(server.base_url, "local") as client:
        result = await ReactPlanner(llm_client=client, catalog=tools()).run("q")
    assert isinstance(result, PlannerFinish)
    return [request.body["response_format"]["json_schema"]["schema"] for request in server.requests]


def test_a_reply_must_name_a_tool_or_finish_and_give_arguments_or_an_answer() -> None:
    schema = catalog_action_schema(tools())
    jsonschema.Draft202012Validator.check_schema(schema)
    call = {"thought": "t", "next_node": "get_weather", "args": {"city": "Paris"}}
    assert valid(schema, call)
    assert valid(schema, {"thought": "t", "next_node": None, "args": {"answer": "18 C"}})
    order = {"customer": "ann", "items": [{"name": "tea", "quantity": 2}]}
    assert valid(schema, {"thought": "t", "next_node": "place_order", "args": order})

    # The ways a model finished early, or half-decided, are not replies any more:
    assert not valid(schema, {"thought": "t", "args": {"city": "Paris"}})  # no next_node
    assert not valid(schema, {"thought": "t", "next_node": None})  # no args
    assert not valid(schema, {"thought": "t", "next_node": None, "args": {"answer": ""}})
    assert not valid(schema, {"thought": "t", "next_node": None, "args": None})
    assert not valid(schema, {"thought": "t", "next_node": "invented", "args": {}})
    assert not valid(schema, {"thought": "t", "next_node": "get_weather", "args": {"x": 1}})
    assert not valid(schema, {**call, "thought": "x" * (THOUGHT_MAX_CHARS + 1)})
    answer = {"answer": "a" * (ANSWER_MAX_CHARS + 1)}
    assert not valid(schema, {"thought": "t", "next_node": None, "args": answer})


def test_the_schema_is_one_object_so_a_decoder_does_not_pay_per_tool_for_the_thought() -> None:
    schema = catalog_action_schema(tools())
    assert schema["type"] == "object"
    assert list(schema["properties"])[:3] == ["thought", "next_node", "args"]
    assert "anyOf" not in schema
    # Which tool's arguments go with which name is for the planner to check (a
    # finish holding a tool's arguments is sent back, see FinishCheck).
    args_options = schema["properties"]["args"]["anyOf"]
    assert args_options[0]["required"] == ["answer"]
    assert len(args_options) == 1 + len(tools()) + 1  # and {} for a parallel plan


def test_parallel_plans_and_joins_get_the_same_per_tool_arguments() -> None:
    schema = catalog_action_schema(tools())
    plan = [
        {"node": "get_weather", "args": {"city": "Paris"}},
        {"node": "get_weather", "args": {"city": "Oslo"}},
    ]
    join = {"node": "inspect", "args": {"item": {"name": "x", "quantity": 1}}}
    fan_out = {"thought": "t", "next_node": None, "args": {}}
    assert valid(schema, {**fan_out, "plan": plan, "join": join})
    assert valid(schema, {**fan_out, "plan": plan, "join": None})
    assert not valid(schema, {**fan_out, "plan": [{"node": "get_weather", "args": {}}]})
    assert not valid(schema, {**fan_out, "plan": []})
    assert not valid(schema, {**fan_out, "plan": [{"node": "invented", "args": {}}]})
    # Whatever is sent, the reply is still read as the spec'd PlannerAction.
    action = PlannerAction.model_validate({"thought": "t", "plan": plan, "join": join})
    assert action.plan is not None
    assert action.join is not None


def test_nested_models_of_two_tools_keep_their_own_definitions() -> None:
    schema = catalog_action_schema(tools())
    assert {"place_order__Item", "inspect__Item"} <= set(schema["$defs"])
    text = json.dumps(schema)
    assert '"#/$defs/Item"' not in text
    assert '"title"' not in text  # titles cost tokens and grammar rules, nothing else


def test_the_flat_fallback_still_requires_the_decision() -> None:
    schema = catalog_action_schema(tools(), flat=True)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "anyOf" not in json.dumps(schema)
    assert "const" not in json.dumps(schema)
    assert schema["required"] == ["thought", "next_node", "args"]
    assert valid(schema, {"thought": "t", "next_node": "get_weather", "args": {"city": "P"}})
    assert valid(schema, {"thought": "t", "next_node": None, "args": {"answer": "a"}})
    assert not valid(schema, {"thought": "t", "args": {"answer": "a"}})
    assert not valid(schema, {"thought": "t", "next_node": "invented", "args": {}})


async def test_json_schema_mode_sends_the_catalog_schema_and_the_generic_one_otherwise() -> None:
    finish = act(next_node=None, args={"answer": "done"})
    client = ScriptedLLMClient([finish])
    planner = ReactPlanner(llm_client=client, catalog=tools())
    await planner.run("q")
    sent = client.calls[0]["response_format"]
    assert sent["json_schema"]["name"] == "planner_action"
    assert sent["json_schema"]["schema"] == catalog_action_schema(tools())

    wants = ScriptedLLMClient([finish], expects_json_schema=True)
    await ReactPlanner(llm_client=wants, catalog=tools(), json_schema_mode=False).run("q")
    assert wants.calls[0]["response_format"]["json_schema"]["schema"] == (
        PlannerAction.model_json_schema()
    )


def test_a_held_tool_goes_with_its_own_arguments_and_anything_else_stays_open() -> None:
    schema = held_action_schema(tools(), "get_weather")

    # The tool named with another tool's arguments, the mistake being held against.
    order = {"customer": "Ada", "items": [{"name": "tea", "quantity": 1}]}
    assert not valid(schema, {"thought": "t", "next_node": "get_weather", "args": order})
    assert valid(schema, {"thought": "t", "next_node": "get_weather", "args": {"city": "P"}})
    # Another tool, with its own arguments, is open.
    assert valid(schema, {"thought": "t", "next_node": "place_order", "args": order})
    assert not valid(schema, {"thought": "t", "next_node": "place_order", "args": {"city": "P"}})
    assert not valid(schema, {"thought": "t", "next_node": "invented", "args": {}})
    # That one reply is a call: a finish right after the refusal (with the refused
    # arguments, as a small model did) is not.
    assert not valid(schema, {"thought": "t", "next_node": None, "args": {"answer": "a"}})
    assert not valid(schema, {"thought": "t", "next_node": None, "args": order})
    plan = [{"node": "get_weather", "args": {"city": "P"}}]
    assert not valid(schema, {"thought": "t", "next_node": None, "args": {}, "plan": plan})
    assert schema["$defs"] == catalog_action_schema(tools())["$defs"]


async def test_after_arguments_that_did_not_validate_the_next_request_holds_that_tool() -> None:
    client = ScriptedLLMClient(
        [
            act(next_node="get_weather", args={"customer": "Ada", "items": []}),
            act(next_node="get_weather", args={"city": "Paris"}),
            act(next_node=None, args={"answer": "18.5 C"}),
        ]
    )
    result = await ReactPlanner(llm_client=client, catalog=tools()).run("weather in Paris?")

    assert isinstance(result, PlannerFinish)
    assert result.payload == {"answer": "18.5 C"}
    sent = [call["response_format"]["json_schema"] for call in client.calls]
    assert [s["name"] for s in sent] == ["planner_action"] * 3
    catalog = catalog_action_schema(tools())
    assert sent[0]["schema"] == catalog
    assert sent[1]["schema"] == held_action_schema(tools(), "get_weather")
    assert sent[2]["schema"] == catalog  # held for one request only


async def test_a_server_that_refuses_the_held_schema_gets_the_fallback(
    server: ScriptedLLMServer,
) -> None:
    sent = await schemas_sent(
        server,
        act(next_node="get_weather", args={"customer": "Ada", "items": []}),
        ServerReply.error(400, "response_format: keyword 'anyOf' is not supported"),
        act(next_node=None, args={"answer": "no weather"}),
    )
    assert sent[1] == held_action_schema(tools(), "get_weather")
    assert sent[2] == catalog_action_schema(tools(), flat=True)


def test_a_schema_without_a_tool_finishes_or_calls_another() -> None:
    schema = catalog_action_schema(tools(), without="get_weather")

    order = {"customer": "Ada", "items": [{"name": "tea", "quantity": 1}]}
    assert not valid(schema, {"thought": "t", "next_node": "get_weather", "args": {"city": "P"}})
    assert valid(schema, {"thought": "t", "next_node": "place_order", "args": order})
    assert valid(schema, {"thought": "t", "next_node": None, "args": {"answer": "18.5 C"}})
    plan = [{"node": "get_weather", "args": {"city": "P"}}]
    assert not valid(schema, {"thought": "t", "next_node": None, "args": {}, "plan": plan})


def test_a_finish_schema_takes_only_a_finish_with_its_answer() -> None:
    schema = finish_action_schema()

    assert valid(schema, {"thought": "t", "next_node": None, "args": {"answer": "18.5 C"}})
    assert not valid(schema, {"thought": "t", "next_node": "get_weather", "args": {"city": "P"}})
    assert not valid(schema, {"thought": "t", "next_node": None, "args": {"answer": ""}})


async def test_the_same_call_with_the_same_result_twice_is_followed_by_a_finish() -> None:
    client = ScriptedLLMClient(
        [
            act(next_node="get_weather", args={"city": "Paris"}),
            act(next_node="get_weather", args={"city": "Paris"}),
            act(next_node=None, args={"answer": "18.5 C"}),
        ]
    )
    result = await ReactPlanner(llm_client=client, catalog=tools()).run("weather in Paris?")

    assert isinstance(result, PlannerFinish)
    assert result.payload == {"answer": "18.5 C"}
    sent = [call["response_format"]["json_schema"]["schema"] for call in client.calls]
    catalog = catalog_action_schema(tools())
    assert sent[0] == catalog
    assert sent[1] == catalog  # one repeat is not a loop: a retry may be meant
    assert sent[2] == finish_action_schema()


async def test_the_repeat_guard_can_be_turned_off_for_a_polling_loop() -> None:
    poll = act(next_node="get_weather", args={"city": "Paris"})
    client = ScriptedLLMClient([poll, poll, poll, act(next_node=None, args={"answer": "18.5 C"})])
    planner = ReactPlanner(llm_client=client, catalog=tools(), repeat_guard=False)
    result = await planner.run("tell me when Paris warms up")

    assert isinstance(result, PlannerFinish)
    sent = [call["response_format"]["json_schema"]["schema"] for call in client.calls]
    assert sent == [catalog_action_schema(tools())] * 4
    with pytest.raises(ValueError, match="repeat_guard must be a bool, got 'no'"):
        ReactPlanner(llm_client=client, catalog=tools(), repeat_guard="no")  # type: ignore[arg-type]


async def test_a_tool_failing_twice_in_a_row_is_left_out_once() -> None:
    async def get_forecast(args: City, ctx: Any) -> Weather:
        raise LookupError(f"no forecast for {args.city}")

    registry = ModelRegistry()
    registry.register("get_forecast", City, Weather)
    catalog = [*build_catalog([Node(get_forecast, name="get_forecast")], registry), *tools()]
    client = ScriptedLLMClient(
        [
            act(next_node="get_forecast", args={"city": "Atlantis"}),
            act(next_node="get_forecast", args={"city": "Lemuria"}),  # other arguments
            act(next_node="get_weather", args={"city": "Paris"}),
            act(next_node=None, args={"answer": "18.5 C in Paris"}),
        ]
    )
    result = await ReactPlanner(llm_client=client, catalog=catalog).run("Atlantis, or Paris?")

    assert isinstance(result, PlannerFinish)
    sent = [call["response_format"]["json_schema"]["schema"] for call in client.calls]
    assert sent[1] == catalog_action_schema(catalog)
    assert sent[2] == catalog_action_schema(catalog, without="get_forecast")
    assert sent[3] == catalog_action_schema(catalog)


async def test_a_repeat_whose_result_changed_is_not_held_back() -> None:
    readings = iter([1.0, 2.0])

    async def get_weather(args: City, ctx: Any) -> Weather:
        return Weather(celsius=next(readings))  # polling: the result moves

    registry = ModelRegistry()
    registry.register("get_weather", City, Weather)
    catalog = build_catalog([Node(get_weather, name="get_weather")], registry)
    call = act(next_node="get_weather", args={"city": "Paris"})
    client = ScriptedLLMClient([call, call, act(next_node=None, args={"answer": "2 C"})])
    await ReactPlanner(llm_client=client, catalog=[*catalog, *tools()[:1]]).run("q")

    sent = [c["response_format"]["json_schema"]["schema"] for c in client.calls]
    assert sent[2] == sent[0]


async def test_a_server_that_refuses_the_finish_schema_gets_the_fallback(
    server: ScriptedLLMServer,
) -> None:
    call = act(next_node="get_weather", args={"city": "Paris"})
    sent = await schemas_sent(
        server,
        call,
        call,
        ServerReply.error(400, "response_format: type 'null' is not supported"),
        act(next_node=None, args={"answer": "18.5 C"}),
    )
    assert sent[2] == finish_action_schema()
    assert sent[3] == catalog_action_schema(tools(), flat=True)


def test_what_counts_as_a_refused_schema() -> None:
    refused = LLMRequestError(
        "answered 400: 'anyOf' is not supported in response_format", status=400
    )
    assert rejects_schema(refused)
    assert not rejects_schema(LLMRequestError("answered 401: bad key", status=401))
    assert not rejects_schema(LLMRequestError("answered 400: model not found", status=400))
    assert not rejects_schema(LLMServerError("answered 500: schema", status=500))


def test_fallbacks_go_down_one_level_at_a_time_and_say_so(caplog: Any) -> None:
    schemas = ActionSchemas(tools())
    refused = LLMRequestError("answered 400: unsupported schema", status=400)
    levels = [schemas.level]
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner"):
        while schemas.fall_back(refused):
            levels.append(schemas.level)
    assert levels == ["catalog", "flat", "generic", "none"]
    assert schemas.current is None
    assert [r.msg for r in caplog.records].count("action_schema_fallback") == 3
    assert "action_schema_fallback from=catalog to=flat error=" in caplog.text
    assert "unsupported schema" in caplog.text
    assert ActionSchemas([]).level == "generic"  # no tools: nothing to choose between


@pytest.fixture
def server() -> Any:
    with ScriptedLLMServer() as running:
        yield running


async def test_a_server_that_refuses_the_schema_gets_the_fallback(
    server: ScriptedLLMServer, caplog: Any
) -> None:
    refusal = ServerReply.error(400, "response_format: keyword 'anyOf' is not supported")
    server.add(
        refusal,
        refusal,
        act(next_node=None, args={"answer": "18 C"}),
        act(next_node=None, args={"answer": "again"}),
    )
    async with OpenAICompatibleClient(server.base_url, "local") as client:
        planner = ReactPlanner(llm_client=client, catalog=tools())
        with caplog.at_level(logging.WARNING, logger="penguiflow.planner"):
            result = await planner.run("q")
            again = await planner.run("q2")
    assert isinstance(result, PlannerFinish)
    assert result.payload == {"answer": "18 C"}
    sent = [request.body.get("response_format") for request in server.requests]
    assert sent[0]["json_schema"]["schema"] == catalog_action_schema(tools())
    assert sent[1]["json_schema"]["schema"] == catalog_action_schema(tools(), flat=True)
    assert sent[2]["json_schema"]["schema"] == PlannerAction.model_json_schema()
    assert sent[3] == sent[2]  # the planner keeps to what the server accepted
    assert isinstance(again, PlannerFinish)
    assert [r.msg for r in caplog.records].count("action_schema_fallback") == 2


async def test_other_request_errors_are_not_taken_for_a_refused_schema(
    server: ScriptedLLMServer,
) -> None:
    server.add(ServerReply.error(400, "model 'local' not found"))
    async with OpenAICompatibleClient(server.base_url, "local") as client:
        planner = ReactPlanner(llm_client=client, catalog=tools())
        with pytest.raises(LLMRequestError, match="not found"):
            await planner.run("q")
    assert len(server.requests) == 1
