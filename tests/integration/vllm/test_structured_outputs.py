"""Structured outputs and tools through the official openai client, on both text engines: the
session's app (transformers) and vLLM beside it (this folder's second application).

response_format json_schema and json_object, whole and streamed, answer JSON that parses and
validates; a schema the grammar cannot enforce is a 400 naming it; max_tokens cuts with
"length"; the client's tool-calling loop runs end to end with tool_choice required and a
named function (the model asks, the client answers with a tool message, the model answers);
`auto` answers validly whichever way the model goes; the client's `parse` helper fills a
pydantic model; and answers under schemas hypothesis-jsonschema generated all validate.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import openai
import pytest
from pydantic import BaseModel

from tests.json_schemas import ANSWER_TOKENS, generated_schemas, prompt_for

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"
ENGINES = ["openai_client", "vllm_openai"]  # transformers (the session's app), vLLM
LIVE_SCHEMAS = 200  # per engine, as in the model tier
PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 20},
    "age": {"type": "integer", "minimum": 0, "maximum": 120}},
    "required": ["name", "age"], "additionalProperties": False}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.", "strict": True,
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 24}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}
CLOCK = {"type": "function", "function": {
    "name": "get_time", "description": "The time in a time zone.", "strict": True,
    "parameters": {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 16}},
                   "required": ["zone"], "additionalProperties": False}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture(params=ENGINES)
def engine(request) -> openai.OpenAI:
    return request.getfixturevalue(request.param)


def person_format(schema: dict = PERSON) -> dict:
    return {"type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True}}


def test_json_schema_whole_and_streamed_parses_validates_and_agrees(engine) -> None:
    messages = [{"role": "user", "content": "Describe a person as JSON."}]
    whole = engine.chat.completions.create(model=MODEL, messages=messages, temperature=0,
                                           max_tokens=96, response_format=person_format())
    assert whole.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(whole.choices[0].message.content), PERSON)
    stream = engine.chat.completions.create(model=MODEL, messages=messages, temperature=0,
                                            max_tokens=96, response_format=person_format(),
                                            stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_json_object_is_an_object(engine) -> None:
    answer = engine.chat.completions.create(
        model=MODEL, temperature=0, max_tokens=128, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Reply with a JSON object with a greeting."}])
    if answer.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(answer.choices[0].message.content), dict)
    else:  # the model went on past max_tokens: still an object's start
        assert answer.choices[0].message.content.startswith("{")


def test_an_unenforceable_schema_is_a_400_naming_it(engine) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        engine.chat.completions.create(
            model=MODEL, messages=ASK, max_tokens=8,
            response_format=person_format({"type": "array", "uniqueItems": True}))
    assert raised.value.body["param"] == "response_format.json_schema.schema"
    assert "uniqueItems" in raised.value.body["message"]


def test_max_tokens_cuts_a_json_answer_with_length(engine) -> None:
    answer = engine.chat.completions.create(model=MODEL, messages=ASK, temperature=0,
                                            max_tokens=3, response_format=person_format())
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage.completion_tokens == 3


def run_tool_loop(engine, tool_choice, stream: bool) -> tuple[list, str]:
    """The client's loop: ask with tools, answer each call with a tool message, ask again.
    Returns the calls and the model's last answer. One call at a time: left free, greedy
    SmolLM2 on vLLM repeats its call until max_tokens."""
    request = {"model": MODEL, "messages": ASK, "tools": [WEATHER, CLOCK],
               "tool_choice": tool_choice, "parallel_tool_calls": False, "temperature": 0,
               "max_tokens": 96}
    if stream:
        with engine.chat.completions.stream(**request) as events:
            first = events.get_final_completion()
    else:
        first = engine.chat.completions.create(**request)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    calls = choice.message.tool_calls
    asked = [{"id": c.id, "type": "function",
              "function": {"name": c.function.name, "arguments": c.function.arguments}}
             for c in calls]
    messages = [*ASK, {"role": "assistant", "content": choice.message.content,
                       "tool_calls": asked}]
    for call in calls:
        messages.append({"role": "tool", "tool_call_id": call.id,
                         "content": json.dumps({"celsius": 21, "sky": "clear"})})
    final = engine.chat.completions.create(model=MODEL, messages=messages, temperature=0,
                                           tools=[WEATHER, CLOCK], tool_choice="none",
                                           max_tokens=48)
    assert final.choices[0].finish_reason in ("stop", "length")
    return calls, final.choices[0].message.content


@pytest.mark.parametrize("stream", [False, True])
def test_the_tool_loop_with_a_named_function(engine, stream: bool) -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    calls, answer = run_tool_loop(engine, choice, stream)
    assert [c.function.name for c in calls] == ["get_weather"]
    jsonschema.validate(json.loads(calls[0].function.arguments),
                        WEATHER["function"]["parameters"])
    assert calls[0].id.startswith("call_") and answer


@pytest.mark.parametrize("stream", [False, True])
def test_the_tool_loop_with_required(engine, stream: bool) -> None:
    calls, answer = run_tool_loop(engine, "required", stream)
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, CLOCK)}
    assert calls and len({c.id for c in calls}) == len(calls)
    for call in calls:
        jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])
    assert answer


def test_required_without_parallel_calls_makes_one(engine) -> None:
    answer = engine.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER, CLOCK], tool_choice="required",
        parallel_tool_calls=False, temperature=0, max_tokens=96)
    assert len(answer.choices[0].message.tool_calls) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_auto_answers_validly_whichever_way_the_model_goes(engine, stream: bool) -> None:
    request = {"model": MODEL, "messages": ASK, "tools": [WEATHER], "tool_choice": "auto",
               "temperature": 0, "max_tokens": 64}
    if stream:
        with engine.chat.completions.stream(**request) as events:
            try:
                answer = events.get_final_completion()
            except openai.LengthFinishReasonError as cut:  # the helper's word for "length"
                answer = cut.completion
    else:
        answer = engine.chat.completions.create(**request)
    choice = answer.choices[0]
    if choice.message.tool_calls:
        assert choice.finish_reason == "tool_calls"
        assert all(isinstance(json.loads(c.function.arguments), dict)
                   for c in choice.message.tool_calls)
    else:
        assert choice.finish_reason in ("stop", "length") and choice.message.content


def test_the_clients_parse_helper_fills_a_pydantic_model(engine) -> None:
    answer = engine.chat.completions.parse(
        model=MODEL, temperature=0, max_tokens=96, response_format=Person,
        messages=[{"role": "user", "content": "Describe a person as JSON."}])
    assert isinstance(answer.choices[0].message.parsed, Person)


def test_answers_under_generated_schemas_all_validate(engine) -> None:
    """8 at a time, so constrained rows share the engine's batches; sampled, seeded (greedy,
    this model may write one digit forever inside a JSON number)."""
    def answer(seed_and_schema: tuple[int, dict]) -> tuple[dict, str, str]:
        seed, schema = seed_and_schema
        reply = engine.chat.completions.create(
            model=MODEL, messages=prompt_for(schema), temperature=1.0, seed=seed,
            max_tokens=ANSWER_TOKENS,
            response_format={"type": "json_schema",
                             "json_schema": {"name": "generated", "schema": schema}})
        return schema, reply.choices[0].message.content, reply.choices[0].finish_reason

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(answer, enumerate(generated_schemas(LIVE_SCHEMAS))))
    failures = []
    for schema, text, reason in answers:
        try:
            assert reason == "stop", reason
            jsonschema.validate(json.loads(text), schema)
        except (AssertionError, ValueError, jsonschema.ValidationError) as error:
            failures.append((schema, text[:200], str(error)[:200]))
    assert not failures, failures[:5]
