"""The multimodal DAG: audio and image stages overlap, then the LLM answers (whole or streamed)."""

from __future__ import annotations

import json

import pytest

from tests.media import b64, png_image, speech_wav, words

pytestmark = pytest.mark.integration
LABELS = ["a red circle", "a cat", "a car", "a tree"]


def body(**extra):
    return {"audio": b64(speech_wav()), "image": b64(png_image()), "labels": LABELS,
            "prompt": "Summarise what you heard and saw in one sentence.",
            "max_tokens": 24, **extra}


def test_pipeline_with_audio_and_image_overlaps_its_stages(client):
    response = client.post("/v1/pipeline", json=body())
    assert response.status_code == 200, response.text
    result = response.json()
    assert "dog" in words(result["transcript"]["text"])
    assert sorted(item["label"] for item in result["labels"]) == sorted(LABELS)
    assert abs(sum(item["score"] for item in result["labels"]) - 1.0) < 1e-4
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
