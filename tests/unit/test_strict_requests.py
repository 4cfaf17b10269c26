"""Every field the app does not implement is a 400 naming it (OpenAI's unsupported_parameter),
in a JSON body at any depth and in the audio routes' multipart fields; the informational
fields are accepted and change nothing."""

from __future__ import annotations

import pytest

from tests.unit.frontend_fakes import (
    CLIP_MODEL,
    TEXT_MODEL,
    WHISPER_MODEL,
    post_speech,
)

CHAT = {"model": TEXT_MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
# What the other parts of the OpenAI surface would need: refused until the app does them.
NOT_IMPLEMENTED = {"functions": [], "reasoning_effort": "low", "modalities": ["text"],
                   "prediction": {"type": "content", "content": "x"}}


def unsupported(reply, param: str, code: str = "unsupported_parameter") -> bool:
    error = reply.json()["error"]
    return (reply.status_code == 400 and error["param"] == param and error["code"] == code
            and error["type"] == "invalid_request_error")


@pytest.mark.parametrize("field", sorted(NOT_IMPLEMENTED))
def test_a_chat_parameter_the_app_does_not_implement_is_refused_by_name(client, groups, field):
    reply = client.post("/v1/chat/completions", json={**CHAT, field: NOT_IMPLEMENTED[field]})
    assert unsupported(reply, field), reply.text
    assert field in reply.json()["error"]["message"]
    assert groups[0].calls == []


@pytest.mark.parametrize("body, param", [
    ({**CHAT, "messages": [{"role": "user", "content": "Hi", "name": "bob"}]},
     "messages[0].name"),
    ({**CHAT, "messages": [{"role": "user", "content": [{"type": "text", "text": "a",
                                                        "cache_control": {}}]}]},
     "messages[0].content[0].cache_control"),
    ({**CHAT, "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "x": 1}}]}]},
     "messages[1].content[0].image_url.x"),
    ({**CHAT, "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "rate": 8000}}]}]},
     "messages[0].content[0].input_audio.rate"),
    ({**CHAT, "stream": True, "stream_options": {"include_usage": True, "chunk_size": 4}},
     "stream_options.chunk_size"),
])
def test_nested_fields_the_app_does_not_implement_are_refused_with_their_path(client, body,
                                                                             param):
    assert unsupported(client.post("/v1/chat/completions", json=body), param)


@pytest.mark.parametrize("path, body, field", [
    ("/v1/completions", {"model": TEXT_MODEL, "prompt": "a", "max_tokens": 1}, "suffix"),
    ("/v1/completions", {"model": TEXT_MODEL, "prompt": "a", "max_tokens": 1}, "best_of"),
    ("/v1/completions", {"model": TEXT_MODEL, "prompt": "a", "max_tokens": 1}, "top_logprobs"),
    ("/v1/embeddings", {"model": CLIP_MODEL, "input": "a"}, "truncate"),
    ("/v1/pipeline", {"prompt": "a", "max_tokens": 1}, "messages"),
])
def test_every_json_route_refuses_unknown_fields(client, path, body, field):
    assert unsupported(client.post(path, json={**body, field: None}), field)


def test_informational_fields_are_accepted_as_no_ops(client, groups):
    reply = client.post("/v1/chat/completions", json={
        **CHAT, "user": "u-1", "safety_identifier": "s", "prompt_cache_key": "k",
        "metadata": {"team": "a"}, "store": False, "service_tier": "auto", "stream": True,
        "stream_options": {"include_usage": True, "include_obfuscation": False}})
    assert reply.status_code == 200, reply.text
    assert client.post("/v1/embeddings", json={"model": CLIP_MODEL, "input": "a",
                                               "user": "u"}).status_code == 200
    assert client.post("/v1/completions", json={"model": TEXT_MODEL, "prompt": "a",
                                                "user": "u"}).status_code == 200


@pytest.mark.parametrize("field, value", [("store", True), ("service_tier", "flex")])
def test_a_no_op_field_asking_for_what_the_app_lacks_is_an_unsupported_value(client, field,
                                                                             value):
    assert unsupported(client.post("/v1/chat/completions", json={**CHAT, field: value}),
                       field, "unsupported_value")


def test_max_completion_tokens_is_max_tokens_by_its_newer_name(client, groups):
    body = {**CHAT}
    del body["max_tokens"]
    for sizes in ({"max_completion_tokens": 3}, {"max_completion_tokens": 3, "max_tokens": 3}):
        assert client.post("/v1/chat/completions", json={**body, **sizes}).status_code == 200
        assert groups[0].calls[-1][1][1].max_tokens == 3
    both = client.post("/v1/chat/completions", json={**body, "max_completion_tokens": 3,
                                                      "max_tokens": 4})
    assert both.status_code == 400
    assert both.json()["error"]["param"] == "max_completion_tokens"
    too_many = client.post("/v1/chat/completions", json={**body, "max_completion_tokens": 10**6})
    assert too_many.status_code == 400


@pytest.mark.parametrize("path", ["/v1/audio/transcriptions", "/v1/audio/translations"])
@pytest.mark.parametrize("field, value, code", [
    ("prompt", "names: Anna", "unsupported_parameter"),
    ("chunking_strategy", "auto", "unsupported_parameter"),
    ("include[]", "logprobs", "unsupported_parameter"),
    ("x", "1", "unsupported_parameter"),
    ("temperature", "0.4", "unsupported_value"),
    ("stream", "true", "unsupported_value"),
])
def test_audio_form_fields_the_app_does_not_implement_are_refused(client, groups, path, field,
                                                                  value, code):
    reply = post_speech(client, path, [("model", WHISPER_MODEL), (field, value)])
    assert unsupported(reply, field, code), reply.text
    assert groups[2].calls == []


def test_audio_form_fields_the_app_implements_are_taken(client, groups):
    ok = post_speech(client, "/v1/audio/transcriptions", [
        ("model", "whisper-1"), ("language", "fr"), ("temperature", "0"), ("stream", "false"),
        ("response_format", "verbose_json"), ("timestamp_granularities[]", "word"),
        ("timestamp_granularities[]", "segment")])
    assert ok.status_code == 200, ok.text
    method, (_, speech) = groups[2].calls[-1]
    assert method == "speech" and (speech.language, speech.task, speech.words) == (
        "fr", "transcribe", True)


@pytest.mark.parametrize("path, fields, param", [
    ("/v1/audio/translations", [("language", "fr")], "language"),
    ("/v1/audio/translations", [("timestamp_granularities[]", "word")],
     "timestamp_granularities[]"),
])
def test_translations_take_no_language_nor_timestamps_as_openai(client, path, fields, param):
    reply = post_speech(client, path, [("model", WHISPER_MODEL), *fields])
    assert unsupported(reply, param), reply.text


@pytest.mark.parametrize("fields, param", [
    ([("model", WHISPER_MODEL), ("model", WHISPER_MODEL)], "model"),
    ([("model", WHISPER_MODEL), ("timestamp_granularities[]", "word")],
     "timestamp_granularities"),
    ([("model", WHISPER_MODEL), ("response_format", "verbose_json"),
      ("timestamp_granularities[]", "sentence")], "timestamp_granularities.0"),
])
def test_audio_form_mistakes_are_400s_naming_the_field(client, fields, param):
    reply = post_speech(client, "/v1/audio/transcriptions", fields)
    assert reply.status_code == 400 and reply.json()["error"]["param"] == param, reply.text


def test_a_field_is_known_by_the_name_clients_send_its_alias() -> None:
    from deployments.core.errors import UnsupportedParameter
    from serve_app.protocol import ChatCompletionRequest
    from serve_app.strict_fields import reject_unknown_fields

    schema = {"name": "person", "schema": {"type": "object"}, "strict": True}
    body = {**CHAT, "response_format": {"type": "json_schema", "json_schema": schema}}
    reject_unknown_fields(body, ChatCompletionRequest)
    with pytest.raises(UnsupportedParameter, match="json_schema.json_schema"):
        reject_unknown_fields({**body, "response_format": {
            "type": "json_schema", "json_schema": {**schema, "json_schema": {}}}},
            ChatCompletionRequest)
