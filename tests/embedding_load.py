"""Closed-loop image embedding load for the autoscaling tests: `clients` threads, each sending
one request after another until stopped, counting what succeeded and what failed."""

from __future__ import annotations

import threading
import time

import httpx

from tests.media import b64, png_image


class EmbeddingLoad:
    def __init__(self, url: str, clients: int) -> None:
        self.url, self.stopping, self.lock = url, threading.Event(), threading.Lock()
        self.ok, self.failures, self.stopped_at = 0, [], 0.0
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True)
                        for i in range(clients)]

    def __enter__(self) -> EmbeddingLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped_at = time.monotonic()  # no request starts after this
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=180)

    def _client(self, index: int) -> None:
        body = {"model": "clip-vit-b-32-image", "input": b64(png_image((index * 6, 90, 60)))}
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while not self.stopping.is_set():
                try:
                    response = client.post("/v1/embeddings", json=body)
                    failure = None if response.status_code == 200 else (
                        f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    failure = f"{type(exc).__name__}: {exc}"
                with self.lock:
                    if failure is None:
                        self.ok += 1
                    else:
                        self.failures.append(failure)
