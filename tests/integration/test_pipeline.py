"""The multimodal DAG: audio and image stages overlap, then the LLM answers (whole or streamed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.media import b64, png_image, speech_wav, words

pytestmark = pytest.mark.integration
LABELS = ["a red circle", "a cat", "a car", "a tree"]
# The CLIP here is a random initialisation, so which label wins is noise: the tests check that
# the scores are CLIP's zero-shot computation on the embedder's own vectors, not their ranking.
SCORE_ATOL = 1e-3  # float32 embeddings computed in other batches; logit scale 100


def body(**extra):
    return {"audio": b64(speech_wav()), "image": b64(png_image()), "labels": LABELS,
            "prompt": "Summarise what you heard and saw in one sentence.",
            "max_tokens": 24, **extra}


def embeddings(client, model: str, inputs: list[str]) -> np.ndarray:
    response = client.post("/v1/embeddings", json={"model": model, "input": inputs,
                                                   "encoding_format": "float"})
    assert response.status_code == 200, response.text
    return np.array([item["embedding"] for item in response.json()["data"]])


def zero_shot_from_embeddings(client, image: str, labels: list[str]) -> dict[str, float]:
    """What /v1/embeddings says the labels' scores are: the softmax over labels of 100 x the
    cosine similarity of the image and each label, embedded as "a photo of a {label}."."""
    image_vector = embeddings(client, "clip-vit-b-32-image", [image])[0]
    prompts = [f"a photo of a {label}." for label in labels]
    label_vectors = embeddings(client, "clip-vit-b-32", prompts)
    logits = 100.0 * label_vectors @ image_vector
    weights = np.exp(logits - logits.max())
    return dict(zip(labels, weights / weights.sum()))


def test_pipeline_with_audio_and_image_overlaps_its_stages(client):
    request = body()
    response = client.post("/v1/pipeline", json=request)
    assert response.status_code == 200, response.text
    result = response.json()
    assert "dog" in words(result["transcript"]["text"])
    assert sorted(item["label"] for item in result["labels"]) == sorted(LABELS)
    scores = [item["score"] for item in result["labels"]]
    assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1.0) < 1e-4
    expected = zero_shot_from_embeddings(client, request["image"], LABELS)
    for item in result["labels"]:
        assert item["score"] == pytest.approx(expected[item["label"]], abs=SCORE_ATOL), item
    assert result["text"] and result["usage"]["completion_tokens"] > 0
    timings = result["timings"]
    assert timings["audio_s"] > 0 and timings["image_s"] > 0 and timings["llm_s"] > 0
    # Audio and image run side by side, so the whole is less than the sum of its stages.
    assert timings["total_s"] < timings["audio_s"] + timings["image_s"] + timings["llm_s"]
    assert timings["total_s"] >= max(timings["audio_s"], timings["image_s"]) + timings["llm_s"]


def test_pipeline_streams_perception_then_tokens_then_done(client):
    events = []
    with client.stream("POST", "/v1/pipeline", json=body(stream=True)) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line:
                events.append(line[len("data: "):])
    assert events[-1] == "[DONE]"
    parsed = [json.loads(e) for e in events[:-1]]
    kinds = [event["type"] for event in parsed]
    assert kinds[0] == "perception" and kinds[-1] == "done"
    assert kinds.count("token") >= 2 and set(kinds[1:-1]) == {"token"}
    assert "dog" in words(parsed[0]["transcript"]["text"])
    assert parsed[-1]["timings"]["llm_ttft_s"] <= parsed[-1]["timings"]["llm_s"]


def test_pipeline_with_prompt_only(client):
    result = client.post("/v1/pipeline", json={"prompt": "Say hello.", "max_tokens": 8}).json()
    assert result["transcript"] is None and result["labels"] is None and result["text"]


def test_pipeline_with_image_only_uses_default_labels(client):
    result = client.post("/v1/pipeline", json={"image": b64(png_image()), "max_tokens": 8})
    assert result.status_code == 200
    assert len(result.json()["labels"]) == 10


def multimodal_chat(text: str) -> list[dict]:
    return [{"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(png_image())}},
        {"type": "input_audio", "input_audio": {"data": b64(speech_wav()), "format": "wav"}}]}]


def test_chat_with_image_and_audio_parts_through_the_openai_client(openai_client):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="smollm2-135m-instruct", max_tokens=8, temperature=0,
        messages=multimodal_chat("What did you hear and see?"))
    reply = raw.parse()
    assert reply.choices[0].message.content
    assert reply.usage.prompt_tokens > 60  # the transcript and the labels are in the prompt
    stages = {entry.split(";")[0].strip() for entry in raw.headers["server-timing"].split(",")}
    assert {"ingress", "audio-model", "vision-model", "text-model", "total"} <= stages
    stream = openai_client.chat.completions.create(
        model="smollm2-135m-instruct", max_tokens=8, temperature=0, stream=True,
        messages=multimodal_chat("What did you hear and see?"))
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed == reply.choices[0].message.content


def test_bad_media_parts_get_a_400_or_422_naming_the_part(client):
    def chat(part: dict) -> dict:
        return {"model": "smollm2-135m-instruct", "max_tokens": 4,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"},
                                                          part]}]}

    cases = [
        ({"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}, 400,
         "messages[0].content[1].image_url"),
        ({"type": "image_url", "image_url": {"url": "data:image/png;base64,"
                                                    + b64(b"not an image")}}, 422,
         "messages[0].content[1].image_url"),
        ({"type": "input_audio", "input_audio": {"data": "%%%", "format": "wav"}}, 400,
         "messages[0].content[1].input_audio"),
        ({"type": "video_url", "video_url": {"url": "x"}}, 400, None),
    ]
    for part, status, param in cases:
        response = client.post("/v1/chat/completions", json=chat(part))
        assert response.status_code == status, (part, response.text)
        if param:
            assert response.json()["error"]["param"] == param
