"""Closed-loop load for the autoscaling tests: `clients` threads, each sending one request
after another until stopped, counting what succeeded and what failed. What a client sends is
a `Send`: image embeddings by default, or transcriptions of one clip."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from tests.media import b64, png_image

Send = Callable[[httpx.Client, int], httpx.Response]


def image_embedding(client: httpx.Client, index: int) -> httpx.Response:
    body = {"model": "clip-vit-b-32-image", "input": b64(png_image((index * 6, 90, 60)))}
    return client.post("/v1/embeddings", json=body)


def transcription(wav: bytes) -> Send:
    def send(client: httpx.Client, index: int) -> httpx.Response:
        return client.post("/v1/audio/transcriptions", data={"model": "whisper-base"},
                           files={"file": (f"clip-{index}.wav", wav, "audio/wav")})
    return send


class ClosedLoopLoad:
    def __init__(self, url: str, clients: int, send: Send = image_embedding) -> None:
        self.url, self.send = url, send
        self.stopping, self.lock = threading.Event(), threading.Lock()
        self.ok, self.failures, self.stopped_at = 0, [], 0.0
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True)
                        for i in range(clients)]

    def __enter__(self) -> ClosedLoopLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped_at = time.monotonic()  # no request starts after this
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=180)

    def _client(self, index: int) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while not self.stopping.is_set():
                try:
                    response = self.send(client, index)
                    failure = None if response.status_code == 200 else (
                        f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    failure = f"{type(exc).__name__}: {exc}"
                with self.lock:
                    if failure is None:
                        self.ok += 1
                    else:
                        self.failures.append(failure)
