"""`serve deploy` of a changed config while clients send embeddings, chats and a long stream:
no request fails and no stream is cut. The change (a text engine argument and version, vision
and audio batch sizes) is a change of the app's args, so every deployment rolls: each group
starts its replacement before its old replica stops."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from cluster.deploy import app_config
from cluster.deploy import deploy as deploy_config
from tests.closed_loop_load import ClosedLoopLoad
from tests.conftest import APP_NAME, TEST_ARGS

pytestmark = pytest.mark.integration
CHAT = {"model": "smollm2-135m-instruct", "max_tokens": 16, "temperature": 0,
        "messages": [{"role": "user", "content": "Name three colours."}]}
STORY = {**CHAT, "max_tokens": 160, "stream": True,
         "messages": [{"role": "user", "content": "Tell a long story about a lighthouse."}]}
ROLLED_OUT = {
    **TEST_ARGS,
    "text": {**TEST_ARGS["text"], "version": "rollout-v2",
             "engine": {**TEST_ARGS["text"]["engine"], "max_prompt_tokens": 1024}},
    "vision": {**TEST_ARGS["vision"], "batching": {"max_batch_size": 8,
                                                   "batch_wait_timeout_s": 0.1}},
    "audio": {**TEST_ARGS["audio"], "batching": {"max_batch_size": 4,
                                                 "batch_wait_timeout_s": 0.1}},
}


def chat(client: httpx.Client, index: int) -> httpx.Response:
    return client.post("/v1/chat/completions", json=CHAT)


class Streams:
    """One client streaming long chats one after another: each stream's span, and what went
    wrong with any that did not end in a finish_reason and [DONE]."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stopping = threading.Event()
        self.spans: list[tuple[float, float]] = []
        self.cut: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Streams:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=180)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while not self.stopping.is_set():
                started = time.monotonic()
                problem = self._one(client)
                self.spans.append((started, time.monotonic()))
                if problem is not None:
                    self.cut.append(problem)

    @staticmethod
    def _one(client: httpx.Client) -> str | None:
        events: list[str] = []
        try:
            with client.stream("POST", "/v1/chat/completions", json=STORY) as response:
                if response.status_code != 200:
                    return f"{response.status_code}: {response.read()[:200]!r}"
                events = [line[len("data: "):] for line in response.iter_lines() if line]
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__} after {len(events)} events: {exc}"
        if not events or events[-1] != "[DONE]":
            return f"no [DONE] after {len(events)} events: {events[-2:]}"
        chunks = [json.loads(event) for event in events[:-1]]
        if any("error" in chunk for chunk in chunks):
            return f"an error event: {[c for c in chunks if 'error' in c][0]}"
        if chunks[-1]["choices"][0]["finish_reason"] not in ("stop", "length"):
            return f"ended without a finish_reason: {chunks[-1]}"
        return None


def test_a_rollout_under_load_loses_no_request_and_cuts_no_stream(ray_cluster, restored_app):
    config = app_config(ROLLED_OUT, None, ray_cluster.http_port, name=APP_NAME)
    with ClosedLoopLoad(restored_app, clients=2) as embeddings, \
            ClosedLoopLoad(restored_app, clients=1, send=chat) as chats, \
            Streams(restored_app) as streams:
        time.sleep(3)
        deploy_started = time.monotonic()
        deploy_config(f"http://127.0.0.1:{ray_cluster.ports['dashboard']}", config, 300)
        deployed = time.monotonic()
        time.sleep(3)  # requests after the rollout reach the new replicas
    assert embeddings.failures == [] and chats.failures == [], \
        (embeddings.failures + chats.failures)[:5]
    assert streams.cut == [], streams.cut[:5]
    assert embeddings.ok > 0 and chats.ok > 0
    assert any(start < deploy_started < end for start, end in streams.spans), \
        "no stream was in flight when the rollout began"
    assert any(start > deployed for start, _ in streams.spans) or \
        any(start < deployed < end for start, end in streams.spans)
