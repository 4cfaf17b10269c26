"""The chat request's caps on messages and stop strings: past one, a 400 whose JSON names the
field, before any replica sees the request."""

from __future__ import annotations

import json

import pytest

from deployments.core.config import AppConfig
from deployments.core.errors import ServeError
from serve_app import limits
from serve_app.http_errors import error_response
from serve_app.protocol import ChatCompletionRequest


def chat(messages: int = 1, stop: str | list[str] | None = None) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({
        "model": "m", "stop": stop,
        "messages": [{"role": "user", "content": "hi"}] * messages})


def refusal(body: ChatCompletionRequest, config: AppConfig | None = None) -> tuple[int, dict]:
    with pytest.raises(ServeError) as raised:
        limits.check_chat(body, config or AppConfig())
    response = error_response(raised.value)
    return response.status_code, json.loads(response.body)["error"]


def config(**text) -> AppConfig:
    return AppConfig.model_validate({"text": text})


def test_the_defaults_allow_256_messages_and_4_stop_strings_of_256_characters():
    text = AppConfig().text
    assert (text.max_messages, text.max_stop_sequences, text.max_stop_chars) == (256, 4, 256)
    limits.check_chat(chat(messages=256, stop=["x" * 256] * 4), AppConfig())


def test_one_message_too_many_is_a_400_naming_messages():
    status, error = refusal(chat(messages=257))
    assert status == 400 and error["param"] == "messages"
    assert error["type"] == "invalid_request_error"
    assert error["message"] == "messages: 257 messages; the limit is 256 per request"


def test_the_message_cap_comes_from_the_config():
    limits.check_chat(chat(messages=3), config(max_messages=3))
    assert refusal(chat(messages=4), config(max_messages=3))[1]["param"] == "messages"


def test_a_fifth_stop_string_is_a_400_naming_stop():
    status, error = refusal(chat(stop=["a", "b", "c", "d", "e"]))
    assert status == 400 and error["param"] == "stop"
    assert error["message"] == "stop: 5 stop sequences; the limit is 4"


def test_empty_stop_strings_count_towards_the_cap_as_sent():
    assert refusal(chat(stop=["", "", "", "", "END"]))[1]["param"] == "stop"


def test_a_long_stop_string_is_a_400_naming_its_index():
    status, error = refusal(chat(stop=["END", "y" * 257]))
    assert status == 400 and error["param"] == "stop[1]"
    assert error["message"] == "stop[1]: 257 characters; the limit is 256"


def test_a_long_single_stop_string_is_a_400_naming_stop():
    assert refusal(chat(stop="z" * 257))[1]["param"] == "stop"


def test_the_stop_caps_come_from_the_config():
    relaxed = config(max_stop_sequences=8, max_stop_chars=1000)
    limits.check_chat(chat(stop=["w" * 1000] * 8), relaxed)
    assert refusal(chat(stop=["a"]), config(max_stop_sequences=0))[1]["param"] == "stop"


@pytest.mark.parametrize("field, value", [
    ("max_messages", 0), ("max_stop_sequences", -1), ("max_stop_chars", 0)])
def test_a_cap_below_its_minimum_is_a_config_error(field, value):
    from deployments.core.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=field):
        load_config({"text": {field: value}})
