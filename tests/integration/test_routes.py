"""Every route through the official openai client or raw HTTP, against the live app."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from deployments.core.cpu_features import cpu_features
from deployments.core.precision import Choice, cpu_compute_type, cpu_dtype
from tests.media import SENTENCES, b64, png_image, speech_wav, words

pytestmark = pytest.mark.integration
CHAT_MODEL, CLIP_MODEL, WHISPER_MODEL = "smollm2-135m-instruct", "clip-vit-b-32", "whisper-base"


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "status": "ready",
                            "deployments": {"text": "ready", "vision": "ready", "audio": "ready"}}


def test_models_list(openai_client):
    ids = {model.id for model in openai_client.models.list()}
    assert ids == {CHAT_MODEL, CLIP_MODEL, CLIP_MODEL + "-image", WHISPER_MODEL}


def expected_choices() -> dict[str, Choice]:
    """What the test app's replicas choose on this machine (they run on it): text is pinned to
    float32 by the test app; vision and audio keep the default, auto."""
    import ctranslate2

    cpu = cpu_features()
    return {"text": Choice("float32", "set in the config"), "vision": cpu_dtype(cpu),
            "audio": cpu_compute_type(cpu, ctranslate2.get_supported_compute_types("cpu"))}


def test_models_say_the_precision_each_replica_chose(client):
    expected = expected_choices()
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert (models[CHAT_MODEL]["dtype"], models[CHAT_MODEL]["dtype_reason"]) == (
        expected["text"].value, expected["text"].reason)
    for model in (CLIP_MODEL, CLIP_MODEL + "-image"):
        assert (models[model]["dtype"], models[model]["dtype_reason"]) == (
            expected["vision"].value, expected["vision"].reason)
    assert (models[WHISPER_MODEL]["compute_type"],
            models[WHISPER_MODEL]["compute_type_reason"]) == (expected["audio"].value,
                                                              expected["audio"].reason)


def test_each_replica_says_in_its_startup_log_what_it_chose_and_why(ray_cluster, app_url):
    expected = expected_choices()
    logs = Path(ray_cluster.temp_dir, "session_latest", "logs", "serve").glob("replica_*.log")
    text = "".join(path.read_text() for path in logs)
    assert f"text engine transformers: dtype {expected['text']}" in text
    assert f"vision engine open_clip: dtype {expected['vision']}" in text
    assert f"audio engine faster_whisper: compute_type {expected['audio']}" in text


def test_chat_completion(openai_client):
    reply = openai_client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=24, temperature=0)
    assert "Paris" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 10
    assert 0 < reply.usage.completion_tokens <= 24
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_honours_max_tokens_and_stop(openai_client):
    short = openai_client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Write a long story."}],
        max_tokens=5, temperature=0)
    assert short.choices[0].finish_reason == "length"
    assert short.usage.completion_tokens == 5
    stopped = openai_client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=24, temperature=0, stop=["Paris"])
    assert stopped.choices[0].finish_reason == "stop"
    assert "Paris" not in stopped.choices[0].message.content


def test_chat_streaming_through_openai_client(openai_client):
    stream = openai_client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=24, temperature=0, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 3


def test_text_embeddings(openai_client):
    result = openai_client.embeddings.create(model=CLIP_MODEL, input=["a cat", "a dog", "a cat"])
    vectors = np.array([item.embedding for item in result.data])
    assert vectors.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_image_embeddings_base64_and_data_url(openai_client, client):
    image = png_image()
    via_client = openai_client.embeddings.create(
        model=CLIP_MODEL + "-image", input=[b64(image), "data:image/png;base64," + b64(image)])
    first, second = (np.array(item.embedding) for item in via_client.data)
    assert first.shape == (512,)
    np.testing.assert_allclose(first, second, atol=1e-5)
    raw = client.post("/v1/embeddings", json={"model": CLIP_MODEL + "-image", "input": b64(image),
                                              "encoding_format": "float"})
    assert raw.status_code == 200
    np.testing.assert_allclose(raw.json()["data"][0]["embedding"], first, atol=1e-5)


@pytest.mark.parametrize("response_format", ["json", "text", "verbose_json", "srt", "vtt"])
def test_transcription_formats(openai_client, response_format):
    result = openai_client.audio.transcriptions.create(
        model=WHISPER_MODEL, file=("clip.wav", io.BytesIO(speech_wav()), "audio/wav"),
        response_format=response_format)
    expected = words(SENTENCES[0])
    if response_format == "json":
        assert words(result.text)[-3:] == expected[-3:]
    elif response_format == "verbose_json":
        assert result.language in ("en", "english")
        assert result.duration > 1.0
        assert result.segments and result.segments[0].start >= 0
    elif response_format == "text":
        assert words(result)[-3:] == expected[-3:]
    elif response_format == "srt":
        assert result.startswith("1\n00:00:0") and " --> " in result
    else:
        assert result.startswith("WEBVTT") and " --> " in result


def test_transcription_accepts_flac_mp3_ogg(client):
    from tests.speech import encode_as

    for fmt in ("flac", "mp3", "ogg"):
        data = encode_as(speech_wav(), fmt)
        response = client.post("/v1/audio/transcriptions", data={"model": WHISPER_MODEL},
                               files={"file": (f"clip.{fmt}", data, f"audio/{fmt}")})
        assert response.status_code == 200, response.text
        assert "lazy" in words(response.json()["text"]) or "dog" in words(response.json()["text"])
