"""Request schemas, response shapes and the small pure helpers of the ingress."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from deployments.core.errors import ServeError, Undecodable
from serve_app.http import decode_base64, parse_json, sse_event
from serve_app.http_errors import error_body, status_of
from serve_app.protocol import ChatCompletionRequest, EmbeddingRequest, encode_embedding
from serve_app.subtitles import format_transcription, to_srt, to_vtt

SEGMENTS = [{"id": 0, "start": 0.0, "end": 1.5, "text": "hello"},
            {"id": 1, "start": 61.25, "end": 3725.004, "text": "world"}]


def test_chat_request_normalises_stop_and_content_parts():
    request = ChatCompletionRequest.model_validate({
        "model": "m", "stop": "END", "max_completion_tokens": 7,
        "messages": [{"role": "developer", "content": "be brief"},
                     {"role": "user", "content": [{"type": "text", "text": "a"},
                                                  {"type": "text", "text": "b"}]}]})
    assert request.stop_list() == ("END",)
    assert request.requested_max_tokens() == 7
    assert request.plain_messages() == [{"role": "system", "content": "be brief"},
                                        {"role": "user", "content": "ab"}]


def test_parse_json_errors_are_400_naming_the_field():
    with pytest.raises(ServeError) as error:
        parse_json(b'{"model": "m", "messages": [], "temperature": 1}', ChatCompletionRequest)
    assert status_of(error.value) == 400 and error.value.param == "messages"
    with pytest.raises(ServeError, match="not valid JSON"):
        parse_json(b"{", ChatCompletionRequest)
    with pytest.raises(ServeError, match="not valid JSON") as error:  # json refuses 4300+ digits
        parse_json(b'{"seed": ' + b"9" * 5000 + b"}", ChatCompletionRequest)
    assert status_of(error.value) == 400


def test_empty_stop_strings_stop_nothing():
    for stop in ("", ["", "END"]):
        request = ChatCompletionRequest.model_validate(
            {"model": "m", "stop": stop, "messages": [{"role": "user", "content": "x"}]})
        assert request.stop_list() == (() if stop == "" else ("END",))


def test_embedding_base64_round_trips_float32():
    vector = np.array([0.5, -1.25, 3.0], dtype=np.float32)
    encoded = encode_embedding(vector, "base64")
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(encoded), "<f4"), vector)
    assert encode_embedding(vector, "float") == [0.5, -1.25, 3.0]
    assert EmbeddingRequest(model="m", input="x").inputs() == ["x"]


def test_decode_base64_accepts_plain_and_data_urls():
    raw = b"\x89PNG..."
    plain = base64.b64encode(raw).decode()
    assert decode_base64(plain, "image") == raw
    assert decode_base64("data:image/png;base64," + plain, "image") == raw
    with pytest.raises(ServeError, match="base64"):
        decode_base64("%%%", "image")
    with pytest.raises(ServeError, match="data URLs"):
        decode_base64("data:image/png,abc", "image")


def test_subtitle_formats():
    assert to_srt(SEGMENTS) == ("1\n00:00:00,000 --> 00:00:01,500\nhello\n\n"
                                "2\n00:01:01,250 --> 01:02:05,004\nworld\n")
    assert to_vtt(SEGMENTS).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nhello\n")
    result = {"text": "hello world", "language": "en", "duration": 3725.0, "segments": SEGMENTS}
    assert format_transcription(result, "json") == ({"text": "hello world"}, "application/json")
    assert format_transcription(result, "text") == ("hello world\n", "text/plain")
    verbose, _ = format_transcription(result, "verbose_json")
    assert [{k: s[k] for k in SEGMENTS[0]} for s in verbose["segments"]] == SEGMENTS
    assert verbose["language"] == "en" and "words" not in verbose


def test_sse_event_format():
    assert sse_event({"a": 1}) == 'data: {"a":1}\n\n'
    assert sse_event("[DONE]") == "data: [DONE]\n\n"


def test_serve_error_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(Undecodable("bad audio", "file")))
    assert (status_of(error), error.message, error.param) == (422, "bad audio", "file")
    assert error_body(error)["error"]["type"] == "invalid_request_error"

