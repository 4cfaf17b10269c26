"""Fuzzed: a field the app does not implement, anywhere in any route's body (a JSON field at any
depth the models declare, or a multipart field), is always a 400: never a 200 that ignored it,
never a 5xx. Alone in an otherwise valid body it is refused as OpenAI's unsupported_parameter,
naming its path; beside other wrong values, the answer is still a 400."""

from __future__ import annotations

import copy
import string
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serve_app import protocol
from tests.unit.frontend_fakes import (
    CLIP_MODEL,
    TEXT_MODEL,
    WHISPER_MODEL,
    post_speech,
)

MEDIA = "data:image/png;base64,AAAA"
# Each JSON route's valid body, and the places in it that hold an object, with the model that
# declares that object's fields.
JSON_ROUTES: dict[str, tuple[dict[str, Any], dict[tuple, type]]] = {
    "/v1/chat/completions": (
        {"model": TEXT_MODEL, "max_tokens": 2, "stream": False,
         "stream_options": {"include_usage": True},
         "messages": [{"role": "system", "content": "s"},
                      {"role": "user", "content": [
                          {"type": "text", "text": "hi"},
                          {"type": "image_url", "image_url": {"url": MEDIA}},
                          {"type": "input_audio", "input_audio": {"data": "AAAA"}}]}]},
        {(): protocol.ChatCompletionRequest, ("stream_options",): protocol.StreamOptions,
         ("messages", 0): protocol.ChatMessage, ("messages", 1): protocol.ChatMessage,
         ("messages", 1, "content", 0): protocol.TextPart,
         ("messages", 1, "content", 1): protocol.ImagePart,
         ("messages", 1, "content", 1, "image_url"): protocol.ImageUrl,
         ("messages", 1, "content", 2): protocol.AudioPart,
         ("messages", 1, "content", 2, "input_audio"): protocol.InputAudio}),
    "/v1/completions": (
        {"model": TEXT_MODEL, "prompt": ["a", "b"], "max_tokens": 2,
         "stream_options": {"include_usage": False}},
        {(): protocol.CompletionRequest, ("stream_options",): protocol.StreamOptions}),
    "/v1/embeddings": ({"model": CLIP_MODEL, "input": ["a cat"]},
                       {(): protocol.EmbeddingRequest}),
    "/v1/pipeline": ({"prompt": "hi", "max_tokens": 2}, {(): protocol.PipelineRequest}),
}
AUDIO_ROUTES = {"/v1/audio/transcriptions": protocol.TranscriptionForm,
                "/v1/audio/translations": protocol.TranslationForm}
# OpenAI parameter names first: the fields a real client would send.
OPENAI_NAMES = ("response_format", "tools", "tool_choice", "logprobs", "top_logprobs",
                "presence_penalty", "frequency_penalty", "logit_bias", "parallel_tool_calls",
                "functions", "function_call", "audio", "modalities", "prediction",
                "reasoning_effort", "verbosity", "web_search_options", "name", "tool_calls",
                "tool_call_id", "refusal", "best_of", "suffix", "dimensions_x", "prompt",
                "chunking_strategy", "include", "include[]", "known_speaker_names[]")
names = st.one_of(st.sampled_from(OPENAI_NAMES),
                  st.text(string.ascii_letters + string.digits + "_[].-", min_size=1,
                          max_size=16))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def path_of(where: tuple, field: str) -> str:
    path = ""
    for step in where:
        path += f"[{step}]" if isinstance(step, int) else (f".{step}" if path else step)
    return f"{path}.{field}" if path else field


def place(body: dict, where: tuple) -> dict:
    for step in where:
        body = body[step]
    return body


def test_every_valid_base_body_is_answered(client):
    for path, (body, _) in JSON_ROUTES.items():
        assert client.post(path, json=body).status_code == 200, path
    for path in AUDIO_ROUTES:
        assert post_speech(client, path, [("model", WHISPER_MODEL)]).status_code == 200, path


def with_unknown_field(route: str, data: st.DataObject, field: str, value: Any
                       ) -> tuple[dict, tuple] | None:
    """The route's good body with `field` set at a drawn place, and that place; None when the
    place declares `field`."""
    body, places = JSON_ROUTES[route]
    where = data.draw(st.sampled_from(sorted(places, key=str)))
    if field in places[where].model_fields:
        return None
    sent = copy.deepcopy(body)
    place(sent, where)[field] = value
    return sent, where


UnknownFieldCheck = Callable[[str, st.DataObject, str, dict, tuple], None]


def fuzz_unknown_json_fields(check: UnknownFieldCheck) -> None:
    """Calls `check(route, data, field, sent, where)` on each drawn example: `sent` is a JSON
    route's good body with the unknown `field` at the place `where`; `data` draws more."""
    @FUZZ
    @given(st.sampled_from(sorted(JSON_ROUTES)), st.data(), names, json_values)
    def run(route: str, data: st.DataObject, field: str, value: Any) -> None:
        drawn = with_unknown_field(route, data, field, value)
        if drawn is not None:
            check(route, data, field, *drawn)
    run()


def test_an_unknown_json_field_anywhere_is_an_unsupported_parameter_naming_its_path(client):
    def check(route: str, data: st.DataObject, field: str, sent: dict, where: tuple) -> None:
        reply = client.post(route, json=sent)
        assert reply.status_code == 400, (route, sent, reply.text)
        error = reply.json()["error"]
        assert (error["code"], error["param"]) == ("unsupported_parameter",
                                                   path_of(where, field)), error
    fuzz_unknown_json_fields(check)


def test_an_unknown_field_beside_wrong_values_is_still_a_400(client):
    def check(route: str, data: st.DataObject, field: str, sent: dict, where: tuple) -> None:
        others = sorted(key for key in sent if key not in (field, *where[:1]))
        for known in data.draw(st.lists(st.sampled_from(others), max_size=3)):
            sent[known] = data.draw(json_values)
        reply = client.post(route, json=sent)
        assert reply.status_code == 400, (route, sent, reply.status_code, reply.text)
        assert reply.json()["error"]["type"] == "invalid_request_error"
    fuzz_unknown_json_fields(check)


def test_an_unknown_multipart_field_is_an_unsupported_parameter(client):
    @FUZZ
    @given(st.sampled_from(sorted(AUDIO_ROUTES)), names, st.text(max_size=12),
           st.lists(st.sampled_from(["language", "response_format", "temperature"]),
                    max_size=2))
    def check(route: str, field: str, value: str, declared: list[str]) -> None:
        form = AUDIO_ROUTES[route]
        if field.removesuffix("[]") in form.model_fields or field == "file":
            return
        fields = [("model", WHISPER_MODEL), *((name, "") for name in declared),
                  (field, value)]
        reply = post_speech(client, route, fields)
        assert reply.status_code == 400, (route, fields, reply.text)
        assert reply.json()["error"]["type"] == "invalid_request_error"
    check()
