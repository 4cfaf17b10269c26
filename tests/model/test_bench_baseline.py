"""The pipeline's prompt, and the baseline stack: the app's own routes in one process without
Ray, over models called in the server's threadpool (no lock, no batching)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.testclient import TestClient

from bench.baseline_replicas import ModelCalls
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


def meeting(function, parties: int):
    """`function`, entered only once `parties` calls are inside it at once: a request that comes
    alone never gets through, so answers prove the calls overlapped (the timeout only bounds a
    failing test)."""
    barrier = threading.Barrier(parties, timeout=120)

    def wrapped(*args):
        barrier.wait()
        return function(*args)

    return wrapped


def at_once(*calls):
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_model_calls_overlap_unless_serialized():
    calls, met = ModelCalls(), meeting(lambda: None, 3)
    at_once(*[lambda: calls.run(met)] * 3)
    assert (calls.total, calls.peak, calls.in_flight) == (3, 3, 0)
    serialized, inside = ModelCalls(serialize=True), []

    def alone():
        inside.append(serialized.in_flight)

    at_once(*[lambda: serialized.run(alone)] * 4)
    assert (serialized.total, serialized.peak, inside) == (4, 1, [1, 1, 1, 1])


def test_concurrent_requests_to_one_model_run_in_it_at_once(baseline, monkeypatch):
    vision = baseline.app.state.replicas["vision"]
    before = vision.calls.total
    monkeypatch.setattr(vision.engine, "embed_texts", meeting(vision.engine.embed_texts, 3))
    answers = at_once(*[lambda: baseline.post("/v1/embeddings", json={
        "model": "clip-vit-b-32", "input": "a cat"})] * 3)
    assert [a.status_code for a in answers] == [200] * 3
    assert vision.calls.total - before == 3 and vision.calls.peak >= 3


def test_streamed_and_whole_chats_run_in_the_text_model_at_once(baseline, monkeypatch):
    text = baseline.app.state.replicas["text"]
    before = text.calls.total
    engine = text.engine.engine
    monkeypatch.setattr(engine, "generate_batch", meeting(engine.generate_batch, 3))
    chat = {"model": "smollm2-135m-instruct", "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "user", "content": "Say hello"}]}
    whole, *streams = at_once(
        lambda: baseline.post("/v1/chat/completions", json=chat),
        *[lambda: baseline.post("/v1/chat/completions", json={**chat, "stream": True})] * 2)
    assert whole.status_code == 200 and whole.json()["usage"]["completion_tokens"] >= 1
    for stream in streams:
        assert stream.status_code == 200 and stream.text.rstrip().endswith("data: [DONE]")
        assert '"content":' in stream.text and '"error"' not in stream.text
    assert text.calls.total - before == 3 and text.calls.peak >= 3


def test_the_serialized_baseline_is_an_option_not_the_default():
    from bench.baseline_server import parser

    assert not parser().parse_args([]).serialize
    assert parser().parse_args(["--serialize"]).serialize


class CompletionsServer:
    """A stand-in for vLLM's OpenAI server on a loopback port, in a thread of its own: answers
    `/v1/completions` with fixed text and keeps every request body it got."""

    def __init__(self) -> None:
        import asyncio

        self.bodies: list[dict] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner, self.port = asyncio.run_coroutine_threadsafe(self._start(),
                                                                  self.loop).result(30)
        self.url = f"http://127.0.0.1:{self.port}"

    async def _start(self):
        from aiohttp import web

        async def completions(request: web.Request) -> web.Response:
            self.bodies.append(await request.json())
            return web.json_response({"choices": [{"text": "A dog and a red square.",
                                                   "finish_reason": "stop"}],
                                      "usage": {"prompt_tokens": 40, "completion_tokens": 7}})

        app = web.Application()
        app.router.add_post("/v1/completions", completions)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


def test_the_peer_threadpool_server_relays_its_pipelines_llm_stage(model_dir):
    from bench.baseline_server import baseline_config, build_baseline
    from tests.media import png_image, speech_wav, words

    server = CompletionsServer()
    try:
        app = build_baseline(baseline_config(model_dir=model_dir), text_url=server.url)
        with TestClient(app) as client:
            answer = client.post("/v1/pipeline", json={
                "audio": b64(speech_wav()), "image": b64(png_image()), "max_tokens": 12,
                "prompt": "What happened?", "seed": 5})
            tokenizer = app.state.replicas["text"].engine.tokenizer
    finally:
        server.stop()
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["text"] == "A dog and a red square."
    assert result["usage"] == {"prompt_tokens": 40, "completion_tokens": 7}
    [sent] = server.bodies
    assert (sent["model"], sent["max_tokens"], sent["seed"], sent["stream"]) == (
        "smollm2-135m-instruct", 12, 5, False)
    prompt = tokenizer.decode(sent["prompt"])  # token ids, rendered by the chat template here
    assert "dog" in words(result["transcript"]["text"])
    assert result["transcript"]["text"].strip() in prompt and "What happened?" in prompt
    assert app.state.replicas["text"].calls.total == 0  # no text model in this process
