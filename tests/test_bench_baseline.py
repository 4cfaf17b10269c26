"""The pipeline's prompt, and the baseline stack: the app's own routes and replicas in one
process without Ray."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from starlette.testclient import TestClient

from serve_app.prompts import SYSTEM_PROMPT, pipeline_messages
from tests.hostile_media import png_declaring
from tests.media import b64

PERCEPTION = {"transcript": {"text": "open the door please", "language": "en", "duration": 2.0},
              "labels": [{"label": "building", "score": 0.7}, {"label": "person", "score": 0.2},
                         {"label": "plant", "score": 0.05}, {"label": "food", "score": 0.05}],
              "timings": {}}


def test_prompt_carries_transcript_top_three_labels_and_the_question():
    system, user = pipeline_messages("What is going on?", PERCEPTION)
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert user["content"] == ('Transcript of the audio: "open the door please"\n'
                               "The image most likely shows: building (70%), person (20%), "
                               "plant (5%).\nWhat is going on?")
    _, bare = pipeline_messages(None, {**PERCEPTION, "transcript": None, "labels": None})
    assert bare["content"] == "Respond helpfully to the content above."


@pytest.fixture(scope="module")
def baseline(model_dir):
    from bench.baseline_server import baseline_config, build_baseline

    with TestClient(build_baseline(baseline_config(model_dir=model_dir))) as client:
        yield client


def test_the_baseline_serves_the_apps_routes_with_its_limits(baseline):
    models = {m["id"] for m in baseline.get("/v1/models").json()["data"]}
    assert {"smollm2-135m-instruct", "clip-vit-b-32-image", "whisper-base"} <= models
    chat = baseline.post("/v1/chat/completions", json={
        "model": "smollm2-135m-instruct", "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": "Hi"}]})
    assert chat.status_code == 200 and chat.json()["usage"]["completion_tokens"] >= 1
    too_many = baseline.post("/v1/embeddings", json={"model": "clip-vit-b-32",
                                                     "input": ["a"] * 10_000})
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "input"
    huge = baseline.post("/v1/embeddings", json={"model": "clip-vit-b-32-image",
                                                 "input": [b64(png_declaring(30_000, 30_000))]})
    assert huge.status_code == 413


def test_the_baseline_serves_without_starting_ray(model_dir):
    code = ("import ray; from starlette.testclient import TestClient; "
            "from bench.baseline_server import baseline_config, build_baseline; "
            f"client = TestClient(build_baseline(baseline_config(model_dir={model_dir!r}))); "
            "assert client.post('/v1/embeddings', json={'model': 'clip-vit-b-32', "
            "'input': 'a cat'}).status_code == 200; print(ray.is_initialized())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "RAY_ENABLE_AUTO_CONNECT": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
