"""The OpenAI surface through the official openai client against the live app: completions
(whole, a list of prompts, streamed), translations, verbose_json with words, base64
embeddings, the model list, and an unsupported parameter refused as openai.BadRequestError;
every answer validated against the openai package's own response types."""

from __future__ import annotations

import io

import numpy as np
import openai
import pytest
from openai.types import Completion, CreateEmbeddingResponse, Model
from openai.types.audio import TranscriptionVerbose, TranslationVerbose

from tests.media import FRENCH, FRENCH_WORDS, SENTENCES, speech_wav, words

pytestmark = pytest.mark.integration
CHAT_MODEL, CLIP_MODEL, WHISPER_MODEL = "smollm2-135m-instruct", "clip-vit-b-32", "whisper-base"
PROMPTS = ["The capital of France is", "Once upon a time", "1, 2, 3, 4,"]


def complete(client, prompt, **options) -> Completion:
    reply = client.completions.create(model=CHAT_MODEL, prompt=prompt, max_tokens=8,
                                      temperature=0, **options)
    return Completion.model_validate(reply.model_dump())


def test_a_completion_continues_the_prompt_without_the_chat_template(openai_client):
    completion = complete(openai_client, PROMPTS[0])
    (choice,) = completion.choices
    assert completion.object == "text_completion" and choice.text.strip()
    assert choice.finish_reason in ("stop", "length")
    chat = openai_client.chat.completions.create(
        model=CHAT_MODEL, max_tokens=1, messages=[{"role": "user", "content": PROMPTS[0]}])
    assert completion.usage.prompt_tokens < chat.usage.prompt_tokens  # no template around it


def test_a_list_of_prompts_gets_each_prompts_own_completion_in_order(openai_client):
    alone = [complete(openai_client, prompt).choices[0].text for prompt in PROMPTS]
    together = complete(openai_client, PROMPTS)
    assert [c.index for c in together.choices] == [0, 1, 2]
    assert [c.text for c in together.choices] == alone
    echoed = complete(openai_client, PROMPTS[:1], echo=True)
    assert echoed.choices[0].text == PROMPTS[0] + alone[0]


def test_a_streamed_completion_is_the_whole_one_in_pieces(openai_client):
    whole = complete(openai_client, PROMPTS[:2])
    texts, finishes, usage = {0: "", 1: ""}, {}, None
    for chunk in openai_client.completions.create(
            model=CHAT_MODEL, prompt=PROMPTS[:2], max_tokens=8, temperature=0, stream=True,
            stream_options={"include_usage": True}):
        assert chunk.object == "text_completion"
        for choice in chunk.choices:
            texts[choice.index] += choice.text
            if choice.finish_reason is not None:
                finishes[choice.index] = choice.finish_reason
        usage = chunk.usage or usage
    assert [texts[0], texts[1]] == [c.text for c in whole.choices]
    assert finishes == {c.index: c.finish_reason for c in whole.choices}
    assert usage.total_tokens == whole.usage.total_tokens


def test_french_speech_is_translated_to_english(openai_client):
    audio = ("speech.wav", io.BytesIO(speech_wav(FRENCH, voice="fr")), "audio/wav")
    plain = openai_client.audio.translations.create(model=WHISPER_MODEL, file=audio)
    assert "coffee" in words(plain.text), plain.text
    audio[1].seek(0)
    verbose = openai_client.audio.translations.create(model=WHISPER_MODEL, file=audio,
                                                      response_format="verbose_json")
    verbose = TranslationVerbose.model_validate(verbose.model_dump())
    assert verbose.language == "english" and verbose.text == plain.text
    assert verbose.segments and not FRENCH_WORDS & set(words(verbose.text))


def test_verbose_json_times_each_word_when_asked(openai_client):
    audio = ("speech.wav", io.BytesIO(speech_wav(SENTENCES[0])), "audio/wav")
    reply = openai_client.audio.transcriptions.create(
        model=WHISPER_MODEL, file=audio, language="en", response_format="verbose_json",
        timestamp_granularities=["word", "segment"])
    verbose = TranscriptionVerbose.model_validate(reply.model_dump())
    assert verbose.language == "en" and verbose.segments
    assert words(" ".join(w.word for w in verbose.words)) == words(verbose.text)
    starts = [w.start for w in verbose.words]
    assert starts == sorted(starts)
    assert all(0 <= w.start <= w.end <= verbose.duration + 0.5 for w in verbose.words)


def test_embeddings_come_as_base64_by_default_and_decode_to_the_floats(openai_client):
    as_base64 = openai_client.embeddings.create(model=CLIP_MODEL, input=["a photo of a cat"])
    as_floats = openai_client.embeddings.create(model=CLIP_MODEL, input=["a photo of a cat"],
                                                encoding_format="float")
    for reply in (as_base64, as_floats):
        CreateEmbeddingResponse.model_validate(reply.model_dump())
    np.testing.assert_array_equal(np.float32(as_base64.data[0].embedding),
                                  np.float32(as_floats.data[0].embedding))
    assert len(as_floats.data[0].embedding) == 512


def test_models_are_openai_models_with_created_and_owned_by(openai_client):
    models = [Model.model_validate(m.model_dump()) for m in openai_client.models.list()]
    assert {m.id for m in models} == {CHAT_MODEL, CLIP_MODEL, CLIP_MODEL + "-image",
                                      WHISPER_MODEL}
    assert all(m.created > 0 and m.owned_by == "mmserve" for m in models)


@pytest.mark.parametrize("call, param", [
    (lambda c: c.completions.create(model=CHAT_MODEL, prompt="a", max_tokens=2, best_of=2),
     "best_of"),
    (lambda c: c.chat.completions.create(model=CHAT_MODEL, max_tokens=2,
                                         reasoning_effort="low",
                                         messages=[{"role": "user", "content": "Hi"}]),
     "reasoning_effort"),
    (lambda c: c.completions.create(model=CHAT_MODEL, prompt="a", suffix="b"), "suffix"),
    (lambda c: c.audio.transcriptions.create(
        model=WHISPER_MODEL, prompt="names", file=("a.wav", speech_wav(), "audio/wav")),
     "prompt"),
])
def test_an_unsupported_parameter_is_a_bad_request_naming_it(openai_client, call, param):
    with pytest.raises(openai.BadRequestError) as refused:
        call(openai_client)
    assert refused.value.code == "unsupported_parameter" and refused.value.param == param
