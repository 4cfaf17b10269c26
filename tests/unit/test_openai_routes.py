"""/v1/completions, /v1/audio/translations, verbose_json with words, base64 embeddings and
/v1/models, through the front end over fake groups, each answer validated against the openai
package's own response types."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from openai.types import Completion, CreateEmbeddingResponse, Model
from openai.types.audio import TranscriptionVerbose, TranslationVerbose

from deployments.core.call_protocol import StreamEnd, TokenDelta
from deployments.core.errors import Overloaded
from tests.unit.frontend_fakes import (
    CLIP_MODEL,
    TEXT_MODEL,
    WHISPER_MODEL,
    WORDS,
    post_speech,
)


def sse_events(reply) -> list:
    events = [line[len("data: "):] for line in reply.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]", events
    return [json.loads(event) for event in events[:-1]]


def streamed_chunk(event: dict) -> dict:
    """A chunk checked against openai's Completion type; mid-stream a choice's finish_reason
    is null (as OpenAI sends it, and its client reads it unvalidated), which the type's
    literal leaves out, so that one field is checked apart."""
    finished = [{**choice, "finish_reason": choice["finish_reason"] or "stop"}
                for choice in event["choices"]]
    Completion.model_validate({**event, "choices": finished})
    assert all(c["finish_reason"] in (None, "stop", "length") for c in event["choices"])
    return event


def test_a_completion_is_of_the_prompt_as_it_is_without_the_chat_template(client, groups):
    reply = client.post("/v1/completions", json={"model": TEXT_MODEL, "prompt": "Once upon",
                                                 "max_tokens": 5, "temperature": 0})
    assert reply.status_code == 200, reply.text
    completion = Completion.model_validate(reply.json())
    assert completion.object == "text_completion"
    assert [(c.index, c.text, c.finish_reason) for c in completion.choices] == [
        (0, "after Once upon", "stop")]
    assert completion.usage.total_tokens == 4
    method, (prompt, params) = groups[0].calls[-1]
    assert (method, prompt, params.max_tokens, params.temperature) == (
        "generate", "Once upon", 5, 0)


def test_a_completion_without_max_tokens_takes_openais_default_of_16(client, groups):
    client.post("/v1/completions", json={"model": TEXT_MODEL, "prompt": "a"})
    assert groups[0].calls[-1][1][1].max_tokens == 16


def test_a_list_of_prompts_gets_one_choice_each_in_order_and_their_usage_summed(client, groups):
    prompts = ["one", "two words", "three words here"]
    reply = client.post("/v1/completions", json={"model": TEXT_MODEL, "prompt": prompts,
                                                 "echo": True})
    completion = Completion.model_validate(reply.json())
    assert [c.text for c in completion.choices] == [p + "after " + p for p in prompts]
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (6, 6)
    assert sorted(args[0] for _, args in groups[0].calls) == sorted(prompts)


@pytest.mark.parametrize("body, param", [
    ({"prompt": []}, "prompt"), ({"prompt": ["a"] * 17}, "prompt"),
    ({"prompt": [1, 2, 3]}, "prompt.str"), ({"prompt": "a", "n": 9}, "n"),
    ({"prompt": "a", "max_tokens": 5000}, "max_tokens"),
    ({"prompt": "a", "stop": ["1", "2", "3", "4", "5"]}, "stop"),
])
def test_completion_mistakes_are_400s_naming_the_field(client, groups, body, param):
    reply = client.post("/v1/completions", json={"model": TEXT_MODEL, **body})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == param, reply.text
    assert groups[0].calls == []


def test_a_streamed_completion_sends_text_completion_chunks_then_usage_and_done(client):
    reply = client.post("/v1/completions", json={
        "model": TEXT_MODEL, "prompt": ["a", "b c"], "stream": True, "echo": True,
        "stream_options": {"include_usage": True}})
    assert reply.headers["content-type"].startswith("text/event-stream")
    chunks = [streamed_chunk(event) for event in sse_events(reply)]
    *choices, usage = chunks
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 3 + 4
    assert all("usage" not in chunk and len(chunk["choices"]) == 1 for chunk in choices)
    texts, finishes = {0: "", 1: ""}, {}
    for chunk in choices:
        choice = chunk["choices"][0]
        texts[choice["index"]] += choice["text"]
        if choice["finish_reason"] is not None:
            finishes[choice["index"]] = choice["finish_reason"]
    assert texts == {0: "aafter a", 1: "b cafter b c"}
    assert finishes == {0: "length", 1: "length"}
    assert len({chunk["id"] for chunk in chunks}) == 1


def test_a_stream_that_cannot_start_is_an_http_error_and_the_others_are_cancelled(client,
                                                                                  groups):
    opened = []

    def stream(prompt, params):
        if prompt == "busy":
            return Overloaded("the text group is at capacity", retry_after_s=2)
        opened.append(prompt)
        return [TokenDelta("x"), StreamEnd(1, 1, "stop")]
    groups[0].answers["stream"] = stream
    reply = client.post("/v1/completions", json={"model": TEXT_MODEL, "prompt": ["ok", "busy"],
                                                 "stream": True})
    assert reply.status_code == 429 and reply.headers["retry-after"] == "2"
    assert opened == ["ok"]


def test_a_translation_is_the_translate_task_in_openais_verbose_shape(client, groups):
    reply = post_speech(client, "/v1/audio/translations",
                        [("model", WHISPER_MODEL), ("response_format", "verbose_json")])
    assert reply.status_code == 200, reply.text
    verbose = TranslationVerbose.model_validate(reply.json())
    assert (verbose.language, verbose.text) == ("english", "hello there")
    assert verbose.segments[0].tokens and verbose.segments[0].text == "hello there"
    speech = groups[2].calls[-1][1][1]
    assert (speech.task, speech.language, speech.words) == ("translate", None, False)
    plain = post_speech(client, "/v1/audio/translations", [("model", WHISPER_MODEL)])
    assert plain.json() == {"text": "hello there"}


def test_verbose_json_has_words_only_when_asked(client):
    fields = [("model", WHISPER_MODEL), ("response_format", "verbose_json")]
    without = TranscriptionVerbose.model_validate(
        post_speech(client, "/v1/audio/transcriptions", fields).json())
    assert without.words is None and without.segments and without.language == "fr"
    with_words = TranscriptionVerbose.model_validate(post_speech(
        client, "/v1/audio/transcriptions",
        [*fields, ("timestamp_granularities[]", "word")]).json())
    assert [(w.word, w.start, w.end) for w in with_words.words] == [
        (w["word"], w["start"], w["end"]) for w in WORDS]


def test_base64_embeddings_are_little_endian_float32_as_the_openai_client_decodes(client):
    reply = client.post("/v1/embeddings", json={"model": CLIP_MODEL, "input": ["a", "b"],
                                                "encoding_format": "base64"})
    for item in reply.json()["data"]:
        vector = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
        assert vector.tolist() == [0.5, -1.25, 3.0]
    floats = client.post("/v1/embeddings", json={"model": CLIP_MODEL, "input": "a"}).json()
    assert CreateEmbeddingResponse.model_validate(floats).data[0].embedding == [0.5, -1.25, 3.0]


def test_models_are_openai_model_entries_with_created_and_owned_by(client):
    data = client.get("/v1/models").json()["data"]
    models = [Model.model_validate(entry) for entry in data]
    assert {m.id for m in models} == {TEXT_MODEL, CLIP_MODEL, CLIP_MODEL + "-image",
                                      WHISPER_MODEL}
    assert all(m.created > 1_700_000_000 and m.owned_by == "mmserve" for m in models)
