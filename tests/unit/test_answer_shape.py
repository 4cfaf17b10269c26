"""What a chat's response_format, tools and tool_choice make of its answer, and the 400s for
the ones that do not fit, before any work."""

from __future__ import annotations

import json
from typing import Any

import pytest

from deployments.core.errors import InvalidRequest
from deployments.core.json_grammar import JSON_OBJECT_SCHEMA
from serve_app.answer_shape import answer_shape, calls_schema
from serve_app.protocol import ChatCompletionRequest

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "the weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
CLOCK = {"type": "function", "function": {"name": "get_time"}}


def request(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})


def test_no_format_and_no_tools_is_free_text() -> None:
    shape = answer_shape(request())
    assert (shape.json_schema, shape.tools, shape.reading) == (None, None, "text")
    assert answer_shape(request(response_format={"type": "text"})).json_schema is None


def test_json_object_is_any_object() -> None:
    assert answer_shape(request(response_format={"type": "json_object"})).json_schema == \
        JSON_OBJECT_SCHEMA


def test_json_schema_is_the_schema_as_compact_json() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    shape = answer_shape(request(response_format={
        "type": "json_schema", "json_schema": {"name": "n", "schema": schema, "strict": True}}))
    assert json.loads(shape.json_schema) == schema and shape.reading == "text"


@pytest.mark.parametrize("json_schema", [{"name": "n"}, None])
def test_json_schema_without_a_schema_is_a_400(json_schema: dict | None) -> None:
    with pytest.raises(InvalidRequest) as raised:
        answer_shape(request(response_format={"type": "json_schema",
                                              "json_schema": json_schema}))
    assert raised.value.param == "response_format.json_schema.schema"


def test_an_unenforceable_schema_names_where_it_is() -> None:
    with pytest.raises(InvalidRequest) as raised:
        answer_shape(request(response_format={"type": "json_schema", "json_schema": {
            "name": "n", "schema": {"type": "array", "uniqueItems": True}}}))
    assert raised.value.param == "response_format.json_schema.schema"


def test_tools_default_to_auto_offered_and_read_back() -> None:
    shape = answer_shape(request(tools=[WEATHER, CLOCK]))
    assert shape.reading == "auto" and shape.json_schema is None
    assert [t["function"]["name"] for t in json.loads(shape.tools)] == ["get_weather",
                                                                         "get_time"]


def test_auto_keeps_a_response_format() -> None:
    shape = answer_shape(request(tools=[WEATHER], response_format={"type": "json_object"}))
    assert shape.reading == "auto" and shape.json_schema == JSON_OBJECT_SCHEMA


def test_none_offers_no_tools() -> None:
    shape = answer_shape(request(tools=[WEATHER], tool_choice="none"))
    assert (shape.tools, shape.reading) == (None, "text")


def test_a_named_choice_is_its_functions_parameters() -> None:
    shape = answer_shape(request(tools=[WEATHER, CLOCK], tool_choice={
        "type": "function", "function": {"name": "get_weather"}}))
    assert (shape.reading, shape.tool_name) == ("named", "get_weather")
    assert json.loads(shape.json_schema) == WEATHER["function"]["parameters"]


def test_a_named_function_without_parameters_takes_an_empty_object() -> None:
    shape = answer_shape(request(tools=[CLOCK], tool_choice={
        "type": "function", "function": {"name": "get_time"}}))
    assert json.loads(shape.json_schema) == {"type": "object", "properties": {}}


def test_required_is_an_array_of_calls_one_of_the_tools_each() -> None:
    shape = answer_shape(request(tools=[WEATHER, CLOCK], tool_choice="required"))
    schema = json.loads(shape.json_schema)
    assert shape.reading == "required"
    assert schema["minItems"] == 1 and "maxItems" not in schema
    names = [item["properties"]["name"]["enum"] for item in schema["items"]["anyOf"]]
    assert names == [["get_weather"], ["get_time"]]
    assert all(item["additionalProperties"] is False for item in schema["items"]["anyOf"])


def test_required_without_parallel_calls_is_one_call() -> None:
    shape = answer_shape(request(tools=[WEATHER], tool_choice="required",
                                 parallel_tool_calls=False))
    assert json.loads(shape.json_schema)["maxItems"] == 1


def test_a_forced_choice_wins_over_the_response_format() -> None:
    shape = answer_shape(request(tools=[WEATHER], tool_choice="required",
                                 response_format={"type": "json_object"}))
    assert shape.reading == "required" and json.loads(shape.json_schema)["type"] == "array"


def test_required_gathers_the_tools_defs_at_the_top() -> None:
    point = {"type": "object", "properties": {"x": {"type": "number"}}}
    tool = {"type": "function", "function": {"name": "move", "parameters": {
        "type": "object", "$defs": {"point": point},
        "properties": {"to": {"$ref": "#/$defs/point"}}}}}
    schema = calls_schema({"move": tool["function"]["parameters"]})
    assert schema["$defs"] == {"point": point}
    assert "$defs" not in schema["items"]["anyOf"][0]["properties"]["parameters"]
    assert answer_shape(request(tools=[tool], tool_choice="required")).reading == "required"


def test_two_tools_defining_one_def_differently_is_a_400() -> None:
    def parameters(kind: str) -> dict:
        return {"type": "object", "properties": {}, "$defs": {"p": {"type": kind}}}
    with pytest.raises(InvalidRequest, match="twice"):
        calls_schema({"a": parameters("object"), "b": parameters("string")})


@pytest.mark.parametrize(("fields", "param"), [
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
     "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}},
     "tool_choice"),
    ({"tools": [WEATHER, WEATHER]}, "tools[1]"),
    ({"tools": [CLOCK, {"type": "function", "function": {
        "name": "bad", "parameters": {"type": "object", "not": {}}}}]},
     "tools[1].function.parameters"),
])
def test_a_tool_choice_that_does_not_fit_its_tools_is_a_400(fields: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        answer_shape(request(**fields))
    assert raised.value.param == param


def test_a_function_name_openai_would_refuse_fails_validation() -> None:
    with pytest.raises(ValueError):
        request(tools=[{"type": "function", "function": {"name": "has space"}}])
