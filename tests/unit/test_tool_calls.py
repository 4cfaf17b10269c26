"""An answer's text read back as OpenAI's content and tool calls, streamed or whole, and the
streamed deltas assembled by the official client's own stream state."""

from __future__ import annotations

import itertools
import json

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from serve_app import protocol
from serve_app.tool_calls import (
    HermesReader,
    NamedCallReader,
    RequiredCallsReader,
    TextReader,
    assemble,
    finish_reason,
    whole_message,
)

REQUIRED = ('[{"name":"get_weather","parameters":{"city":"Pa\\"ris }","days":[1,{"x":2}]}},'
            '{"name":"get_time","parameters":{}}]')
HERMES = ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
          '\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>')


def ids():
    counter = itertools.count()
    return lambda: f"call_{next(counter)}"


def read_in_pieces(reader, text: str, size: int) -> list[dict]:
    deltas = []
    for start in range(0, len(text), size):
        deltas += reader.feed(text[start:start + size])
    return deltas + reader.finish()


def calls_of(message: dict) -> list[tuple[str, str, dict]]:
    return [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in message.get("tool_calls", [])]


def test_text_is_all_content() -> None:
    reader = TextReader()
    assert read_in_pieces(reader, "hello there", 3)[0] == {"content": "hel"}
    assert whole_message(TextReader(), "hello") == {"role": "assistant", "content": "hello"}
    assert finish_reason(reader, "stop") == "stop"


def test_a_named_call_sends_its_id_and_name_first_then_its_arguments_in_pieces() -> None:
    reader = NamedCallReader("get_weather", ids())
    deltas = read_in_pieces(reader, '{"city":"Paris"}', 4)
    first = deltas[0]["tool_calls"][0]
    assert (first["id"], first["function"]["name"]) == ("call_0", "get_weather")
    assert all("id" not in d["tool_calls"][0] for d in deltas[1:]) and len(deltas) == 4
    assert calls_of(assemble(deltas)) == [("call_0", "get_weather", {"city": "Paris"})]
    assert finish_reason(reader, "stop") == "tool_calls"
    assert finish_reason(reader, "length") == "length"


@pytest.mark.parametrize("size", [1, 2, 5, 17, len(REQUIRED)])
def test_required_calls_read_the_same_in_any_pieces(size: int) -> None:
    message = assemble(read_in_pieces(RequiredCallsReader(ids()), REQUIRED, size))
    assert message["content"] is None
    assert calls_of(message) == [
        ("call_0", "get_weather", {"city": 'Pa"ris }', "days": [1, {"x": 2}]}),
        ("call_1", "get_time", {})]


def test_required_sends_each_calls_name_before_its_arguments() -> None:
    deltas = read_in_pieces(RequiredCallsReader(ids()), REQUIRED, 1)
    heads = [i for i, d in enumerate(deltas) if "id" in d["tool_calls"][0]]
    assert len(heads) == 2
    assert deltas[heads[0]]["tool_calls"][0]["function"] == {"name": "get_weather",
                                                             "arguments": ""}
    pieces = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[1:heads[1]]]
    assert "".join(pieces) == '{"city":"Pa\\"ris }","days":[1,{"x":2}]}'


def test_a_required_call_with_its_parameters_first_comes_whole() -> None:
    text = '[{"parameters":{"q":"x"},"name":"search"}]'
    message = assemble(read_in_pieces(RequiredCallsReader(ids()), text, 3))
    assert calls_of(message) == [("call_0", "search", {"q": "x"})]


def test_required_calls_cut_by_max_tokens_keep_what_came() -> None:
    reader = RequiredCallsReader(ids())
    head = len('[{"name":"get_weather","parameters":')
    message = whole_message(reader, REQUIRED[:head + 12])
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"
    assert message["tool_calls"][0]["function"]["arguments"] == REQUIRED[head:head + 12]
    assert finish_reason(reader, "length") == "length"


def test_text_that_is_no_array_of_calls_stays_content() -> None:
    assert whole_message(RequiredCallsReader(ids()), "oops") == {"role": "assistant",
                                                                "content": "oops"}


@pytest.mark.parametrize("size", [1, 3, 11, len(HERMES)])
def test_hermes_calls_and_the_text_before_them(size: int) -> None:
    reader = HermesReader(ids())
    message = assemble(read_in_pieces(reader, HERMES, size))
    assert message["content"] == "Let me check.\n"
    assert calls_of(message) == [("call_0", "get_weather", {"city": "Paris"}),
                                 ("call_1", "get_time", {})]
    assert finish_reason(reader, "stop") == "tool_calls"


def test_hermes_never_streams_part_of_a_tag_as_content() -> None:
    deltas = read_in_pieces(HermesReader(ids()), HERMES, 1)
    content = "".join(d.get("content", "") for d in deltas)
    assert "<" not in content


def test_hermes_text_like_a_tag_is_content_once_it_is_not_one() -> None:
    message = whole_message(HermesReader(ids()), "a <tool> and <tool_cal")
    assert message == {"role": "assistant", "content": "a <tool> and <tool_cal"}


def test_hermes_a_list_of_calls_in_one_tag_and_an_unclosed_last_tag() -> None:
    text = ('<tool_call>[{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {}}]'
            '</tool_call><tool_call>{"name": "c", "arguments": {"y": 2}}')
    message = whole_message(HermesReader(ids()), text)
    assert [name for _, name, _ in calls_of(message)] == ["a", "b", "c"]
    assert message["content"] is None


def test_hermes_a_call_that_does_not_parse_stays_content_as_written() -> None:
    reader = HermesReader(ids())
    text = "<tool_call>{not json}</tool_call>"
    assert whole_message(reader, text) == {"role": "assistant", "content": text}
    assert finish_reason(reader, "stop") == "stop"


def chunks_of(deltas: list[dict], reason: str) -> list[ChatCompletionChunk]:
    """The stream ChatChunks sends for these deltas (serve_app/frontend.py)."""
    events = [protocol.chat_chunk("chatcmpl-1", "m", {"role": "assistant", "content": ""})]
    events += [protocol.chat_chunk("chatcmpl-1", "m", delta) for delta in deltas]
    events.append(protocol.chat_chunk("chatcmpl-1", "m", {}, reason))
    return [ChatCompletionChunk.model_validate(event) for event in events]


@pytest.mark.parametrize(("reader", "text"), [
    (RequiredCallsReader(ids()), REQUIRED),
    (HermesReader(ids()), HERMES),
    (NamedCallReader("get_weather", ids()), '{"city":"Paris"}'),
])
def test_the_official_clients_stream_state_assembles_the_calls(reader, text: str) -> None:
    deltas = read_in_pieces(reader, text, 2)
    state = ChatCompletionStreamState()
    for chunk in chunks_of(deltas, finish_reason(reader, "stop")):
        state.handle_chunk(chunk)
    choice = state.get_final_completion().choices[0]
    assert choice.finish_reason == "tool_calls"
    assembled = [(c.id, c.function.name, json.loads(c.function.arguments))
                 for c in choice.message.tool_calls]
    assert assembled == calls_of(assemble(deltas))
