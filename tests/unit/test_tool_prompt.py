"""Tools, calls and tool results written into plain messages (Hermes) for a chat template
that does not render tools, and handed to one that does with arguments as objects."""

from __future__ import annotations

import json

from deployments.engines.tool_prompt import as_plain_messages, for_tool_template
from serve_app.tool_calls import HermesReader, whole_message

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}
CALL = {"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
LOOP = [{"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "content": '{"celsius": 21}', "tool_call_id": "call_1"}]


def test_the_tools_join_the_system_message_one_json_object_a_line() -> None:
    plain = as_plain_messages([{"role": "system", "content": "Be brief."}, *LOOP], [WEATHER])
    system = plain[0]["content"]
    assert plain[0]["role"] == "system" and system.startswith("Be brief.\n\n")
    listed = system.split("<tools>\n")[1].split("\n</tools>")[0]
    assert [json.loads(line) for line in listed.splitlines()] == [WEATHER]


def test_without_a_system_message_the_tools_get_one() -> None:
    plain = as_plain_messages(LOOP, [WEATHER])
    assert [m["role"] for m in plain] == ["system", "user", "assistant", "user"]


def test_a_call_is_written_as_the_parser_reads_it_back() -> None:
    assistant = as_plain_messages(LOOP, None)[1]
    assert assistant["role"] == "assistant"
    message = whole_message(HermesReader(), assistant["content"])
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}


def test_a_tool_result_is_a_user_message_in_tool_response_tags() -> None:
    result = as_plain_messages(LOOP, None)[2]
    assert result == {"role": "user",
                      "content": '<tool_response>\n{"celsius": 21}\n</tool_response>'}


def test_plain_messages_are_role_and_text_only() -> None:
    for message in as_plain_messages(LOOP, [WEATHER]):
        assert set(message) == {"role", "content"} and isinstance(message["content"], str)


def test_a_tool_template_gets_the_arguments_as_an_object() -> None:
    templated = for_tool_template(LOOP)
    function = templated[1]["tool_calls"][0]["function"]
    assert function["arguments"] == {"city": "Paris"}
    assert templated[0] is LOOP[0] and templated[2] is LOOP[2]
    assert LOOP[1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
