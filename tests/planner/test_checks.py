"""Premature finishes are caught, correct ones are not; re-asks differ; repeated
failures are named."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog
from penguiflow.planner import PlannerEvent, PlannerFinish, ReactPlanner
from penguiflow.planner.checks import FinishCheck
from penguiflow.planner.clients.openai_compat import OpenAICompatibleClient
from penguiflow.testkit import ScriptedLLMClient
from penguiflow.testkit.llm_server import ScriptedLLMServer

from .conftest import act


class City(BaseModel):
    city: str


class Weather(BaseModel):
    city: str
    celsius: float


def weather_tools(calls: list[str]) -> list[Any]:
    async def get_weather(args: City, ctx: Any) -> Weather:
        calls.append(args.city)
        if args.city == "Atlantis":
            raise LookupError("no such city")
        return Weather(city=args.city, celsius=18.5)

    registry = ModelRegistry()
    registry.register("get_weather", City, Weather)
    return build_catalog([Node(get_weather, name="get_weather")], registry)


def planner(replies: list[str], calls: list[str], **options: Any) -> tuple[ReactPlanner, Any]:
    events: list[PlannerEvent] = []
    client = ScriptedLLMClient(replies)
    p = ReactPlanner(
        llm_client=client,
        catalog=weather_tools(calls),
        event_callback=events.append,
        **options,
    )
    return p, (client, events)


CALL = act("I will call get_weather", next_node="get_weather", args={"city": "Paris"})
ANSWER = act("done", next_node=None, args={"answer": "18.5 C in Paris"})


async def test_a_finish_holding_an_unmade_tool_call_is_sent_back() -> None:
    calls: list[str] = []
    early = act("I will call get_weather for Paris", next_node=None, args={"city": "Paris"})
    p, (client, events) = planner([early, CALL, ANSWER], calls)

    result = await p.run("What is the weather in Paris?")

    assert isinstance(result, PlannerFinish)
    assert result.reason == "answer_complete"
    assert result.payload == {"answer": "18.5 C in Paris"}
    assert calls == ["Paris"]
    first = result.metadata["steps"][0]
    assert "arguments of the tool 'get_weather'" in first["error"]
    assert '"next_node": "get_weather"' in first["error"]
    rejected = [e for e in events if e.event_type == "finish_rejected"]
    assert [(e.extra["check"], e.node_name) for e in rejected] == [("tool_args", "get_weather")]
    # The model saw the correction as the result of its finish.
    assert "arguments of the tool" in client.calls[1]["messages"][-1]["content"]


async def test_a_correct_finish_is_taken_at_once() -> None:
    calls: list[str] = []
    p, (client, events) = planner([CALL, ANSWER], calls)
    result = await p.run("What is the weather in Paris?")
    assert isinstance(result, PlannerFinish)
    assert result.payload == {"answer": "18.5 C in Paris"}
    assert len(client.calls) == 2
    assert not [e for e in events if e.event_type == "finish_rejected"]


async def test_a_finish_repeating_the_arguments_of_a_call_made_is_a_report() -> None:
    calls: list[str] = []
    report = act("reporting", next_node=None, args={"city": "Paris"})
    p, (client, _) = planner([CALL, report], calls)
    result = await p.run("Which city did you look up?")
    assert isinstance(result, PlannerFinish)
    assert result.payload == {"city": "Paris"}
    assert len(client.calls) == 2


async def test_an_empty_finish_after_a_failed_step_is_not_an_answer() -> None:
    calls: list[str] = []
    failing = act("look", next_node="get_weather", args={"city": "Atlantis"})
    empty = act("giving up", next_node=None)
    p, (_client, events) = planner([failing, empty, CALL, ANSWER], calls)

    result = await p.run("What is the weather in Atlantis or else Paris?")

    assert isinstance(result, PlannerFinish)
    assert result.payload == {"answer": "18.5 C in Paris"}
    assert calls == ["Atlantis", "Paris"]
    assert "a finish needs the answer" in result.metadata["steps"][1]["error"]
    assert [e.extra["check"] for e in events if e.event_type == "finish_rejected"] == [
        "empty_answer"
    ]


async def test_each_check_intervenes_once_so_a_model_that_insists_is_taken_at_its_word() -> None:
    calls: list[str] = []
    direct = act("I know this", next_node=None, args={"answer": "It is usually mild."})
    p, (_client, events) = planner([direct, direct], calls)

    result = await p.run("Is the weather in Paris usually mild?")

    assert isinstance(result, PlannerFinish)
    assert result.reason == "answer_complete"
    assert result.payload == {"answer": "It is usually mild."}
    assert "no tool has been called yet" in result.metadata["steps"][0]["error"]
    assert [e.extra["check"] for e in events if e.event_type == "finish_rejected"] == ["no_tool"]


async def test_a_query_no_tool_is_about_finishes_without_a_nudge() -> None:
    p, (client, _) = planner([act("t", next_node=None, args={"answer": "Hello!"})], [])
    result = await p.run("Say hello")
    assert isinstance(result, PlannerFinish)
    assert result.payload == {"answer": "Hello!"}
    assert len(client.calls) == 1


async def test_the_no_tool_heuristic_is_configurable_and_the_checks_can_be_off() -> None:
    direct = act("t", next_node=None, args={"answer": "Hello!"})
    strict, (client, _) = planner(
        [direct, direct], [], finish_check=FinishCheck(tool_first="always")
    )
    assert isinstance(await strict.run("Say hello"), PlannerFinish)
    assert len(client.calls) == 2

    by_rule, (client, _) = planner(
        [direct], [], finish_check=FinishCheck(tool_first=lambda query: "forecast" in query)
    )
    assert isinstance(await by_rule.run("Say hello"), PlannerFinish)
    assert len(client.calls) == 1

    early = act("t", next_node=None, args={"city": "Paris"})
    off, (client, _) = planner([early], [], finish_check=False)
    result = await off.run("What is the weather in Paris?")
    assert isinstance(result, PlannerFinish)
    assert result.payload == {"city": "Paris"}  # the reference's behaviour
    assert len(client.calls) == 1


async def test_a_caught_finish_counts_against_the_iteration_budget() -> None:
    early = act("t", next_node=None, args={"city": "Paris"})
    p, _ = planner([early], [], max_iters=1)
    result = await p.run("What is the weather in Paris?")
    assert isinstance(result, PlannerFinish)
    assert result.reason == "no_path"


async def test_a_repair_re_ask_carries_the_invalid_reply_and_differs_each_time() -> None:
    p, (client, _) = planner(["not json", "not json", CALL, ANSWER], [])
    result = await p.run("What is the weather in Paris?")
    assert isinstance(result, PlannerFinish)
    first, second, third = (call["messages"] for call in client.calls[:3])
    assert second[len(first)] == {"role": "assistant", "content": "not json"}
    assert second[len(first) + 1]["role"] == "system"
    assert second[len(first) + 1]["content"].startswith(
        "Previous response was invalid JSON or schema mismatch: "
    )
    assert third[: len(second)] == second
    assert len(third) == len(second) + 2  # never the same request twice


async def test_the_same_failing_call_made_again_is_named() -> None:
    calls: list[str] = []
    failing = act("look", next_node="get_weather", args={"city": "Atlantis"})
    p, _ = planner([failing, failing, CALL, ANSWER], calls)
    result = await p.run("Weather in Atlantis, or else Paris?")
    assert isinstance(result, PlannerFinish)
    errors = [step["error"] for step in result.metadata["steps"]]
    assert "already failed" not in errors[0]
    assert "This exact call already failed at step 0" in errors[1]
    assert errors[2] is None


async def test_the_native_client_caps_a_reply_with_max_tokens() -> None:
    import pytest

    from penguiflow.errors import InvalidArgumentError

    with ScriptedLLMServer() as server:
        server.add(ANSWER)
        async with OpenAICompatibleClient(server.base_url, "local", max_tokens=256) as client:
            await client.complete(messages=[{"role": "user", "content": "q"}])
        assert server.requests[0].body["max_tokens"] == 256
    with pytest.raises(InvalidArgumentError, match="max_tokens must be None or a positive"):
        OpenAICompatibleClient("http://127.0.0.1:1/v1", "local", max_tokens=0)


async def test_a_finish_right_after_a_failed_call_is_sent_back_once() -> None:
    calls: list[str] = []
    failing = act("look", next_node="get_weather", args={"city": "Atlantis"})
    guess = act("made up", next_node=None, args={"answer": "It is 20 C in Atlantis."})
    p, (client, events) = planner(
        [failing, guess, CALL, ANSWER], calls, finish_check=FinishCheck(after_error=True)
    )

    result = await p.run("What is the weather in Atlantis or else Paris?")

    assert isinstance(result, PlannerFinish)
    assert result.payload == {"answer": "18.5 C in Paris"}
    assert calls == ["Atlantis", "Paris"]
    assert "the last call of 'get_weather' failed" in result.metadata["steps"][1]["error"]
    rejected = [
        (e.extra["check"], e.node_name) for e in events if e.event_type == "finish_rejected"
    ]
    assert rejected == [("after_error", "get_weather")]
    assert "failed, so its result is unknown" in client.calls[2]["messages"][-1]["content"]


async def test_a_model_that_insists_after_a_failure_reports_it() -> None:
    calls: list[str] = []
    failing = act("look", next_node="get_weather", args={"city": "Atlantis"})
    report = act("it fails", next_node=None, args={"answer": "Atlantis has no forecast."})
    p, (client, _) = planner(
        [failing, report, report], calls, finish_check=FinishCheck(after_error=True)
    )

    result = await p.run("What is the weather in Atlantis?")

    assert isinstance(result, PlannerFinish)
    assert result.reason == "answer_complete"
    assert result.payload == {"answer": "Atlantis has no forecast."}
    assert len(client.calls) == 3


async def test_a_finish_after_a_failure_then_a_success_is_taken_at_once() -> None:
    calls: list[str] = []
    failing = act("look", next_node="get_weather", args={"city": "Atlantis"})
    p, (client, events) = planner(
        [failing, CALL, ANSWER], calls, finish_check=FinishCheck(after_error=True)
    )
    result = await p.run("What is the weather in Atlantis or else Paris?")
    assert isinstance(result, PlannerFinish)
    assert result.payload == {"answer": "18.5 C in Paris"}
    assert len(client.calls) == 3
    assert not [e for e in events if e.event_type == "finish_rejected"]


async def test_by_default_a_finish_after_a_failed_call_reports_it() -> None:
    calls: list[str] = []
    failing = act("look", next_node="get_weather", args={"city": "Atlantis"})
    report = act("it fails", next_node=None, args={"answer": "Atlantis has no forecast."})
    p, (client, _) = planner([failing, report], calls)
    result = await p.run("What is the weather in Atlantis?")
    assert isinstance(result, PlannerFinish)
    assert result.payload == {"answer": "Atlantis has no forecast."}
    assert len(client.calls) == 2
