"""A replica SIGKILLed under concurrent load: its requests fail cleanly or are retried, and the
group comes back whole.

For each modality, 8 client threads keep its routes busy (chat whole and streamed, embeddings,
transcriptions, the pipeline) while the replica's process is killed. Every request must succeed
(an idempotent call retried on the new replica) or fail with 503 and a Retry-After; a stream
already under way may end with an in-band error event, which must say 503 too. A good request
must succeed again within 30 s of the kill, and afterwards the group must serve a full batch of
concurrent requests, so no slot was left held by a request that died with the replica.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from bench.replica_kill import MODALITY_DEPLOYMENTS, Kill
from tests.conftest import TEST_ARGS
from tests.media import b64, png_image, speech_wav

pytestmark = pytest.mark.integration
CLIENT_THREADS = 8
RECOVERY_LIMIT_S = 30
WARM_REQUESTS = 8  # answered before the kill, so the load is really running
REQUEST_TIMEOUT_S = 120
CHAT = {"model": "smollm2-135m-instruct", "max_tokens": 8, "temperature": 0,
        "messages": [{"role": "user", "content": "Count to five."}]}


@dataclass
class Outcome:
    route: str
    start: float
    end: float
    status: int = 0  # 0: no response (a transport error)
    retry_after: str | None = None
    stream_error: dict | None = None  # an error event inside a 200 stream
    transport_error: str | None = None
    detail: str = ""  # the start of a failed response's body

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.stream_error is None

    def clean_failure(self) -> bool:
        """A 503 with a Retry-After, or a started stream that ended with a 503 error event."""
        if self.status == 503:
            return bool(self.retry_after and self.retry_after.strip().isdigit())
        return self.status == 200 and (self.stream_error or {}).get("code") == 503


Request = Callable[[httpx.Client], httpx.Response]


def chat(http: httpx.Client) -> httpx.Response:
    return http.post("/v1/chat/completions", json=CHAT)


def image_embedding(http: httpx.Client) -> httpx.Response:
    return http.post("/v1/embeddings", json={"model": "clip-vit-b-32-image",
                                             "input": b64(png_image())})


def text_embedding(http: httpx.Client) -> httpx.Response:
    return http.post("/v1/embeddings", json={"model": "clip-vit-b-32", "input": "a red circle"})


def transcription(http: httpx.Client) -> httpx.Response:
    return http.post("/v1/audio/transcriptions", data={"model": "whisper-base"},
                     files={"file": ("a.wav", speech_wav(), "audio/wav")})


def pipeline(**inputs) -> Request:
    body = {"prompt": "Say hello.", "max_tokens": 4, **inputs}
    return lambda http: http.post("/v1/pipeline", json=body)


# Per modality: the routes its client threads use, in turn, and the request that shows it is back.
LOADS: dict[str, tuple[list[tuple[str, Request | None]], Request]] = {
    "text": ([("chat", chat), ("chat-stream", None), ("pipeline-text", pipeline())], chat),
    "vision": ([("image-embedding", image_embedding), ("text-embedding", text_embedding),
                ("pipeline-image", pipeline(image=b64(png_image())))], image_embedding),
    "audio": ([("transcription", transcription),
               ("pipeline-audio", pipeline(audio=b64(speech_wav())))], transcription),
}


def send(http: httpx.Client, route: str, request: Request | None) -> Outcome:
    started = time.time()
    outcome = Outcome(route, started, started)
    try:
        if request is None:
            _stream_chat(http, outcome)
        else:
            response = request(http)
            outcome.status, outcome.retry_after = response.status_code, \
                response.headers.get("retry-after")
            if response.status_code != 200:
                outcome.detail = response.text[:200]
    except httpx.TransportError as exc:
        outcome.transport_error = f"{type(exc).__name__}: {exc}"
    outcome.end = time.time()
    return outcome


def _stream_chat(http: httpx.Client, outcome: Outcome) -> None:
    with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
        outcome.status, outcome.retry_after = response.status_code, \
            response.headers.get("retry-after")
        if response.status_code != 200:
            outcome.detail = response.read()[:200].decode(errors="replace")
            return
        events = [line[len("data: "):] for line in response.iter_lines() if line]
    if not events or events[-1] != "[DONE]":
        outcome.stream_error = {"code": None, "message": f"stream ended without [DONE]: {events}"}
    for event in events[:-1]:
        if "error" in (payload := json.loads(event)):
            outcome.stream_error = payload["error"]


class Load:
    """CLIENT_THREADS threads sending the modality's requests in turn until stopped."""

    def __init__(self, app_url: str, headers: httpx.Headers,
                 routes: list[tuple[str, Request | None]]) -> None:
        self.app_url, self.headers, self.routes = app_url, headers, routes
        self.outcomes: list[Outcome] = []
        self.in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(CLIENT_THREADS)
        self._loops = [self._pool.submit(self._loop, i) for i in range(CLIENT_THREADS)]

    def _loop(self, index: int) -> None:
        with httpx.Client(base_url=self.app_url, headers=self.headers,
                          timeout=REQUEST_TIMEOUT_S) as http:
            turn = index
            while not self._stop.is_set():
                route, request = self.routes[turn % len(self.routes)]
                turn += 1
                with self._lock:
                    self.in_flight += 1
                outcome = send(http, route, request)
                with self._lock:
                    self.in_flight -= 1
                    self.outcomes.append(outcome)

    def wait_until_busy(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.outcomes) < WARM_REQUESTS or self.in_flight < CLIENT_THREADS // 2:
            assert time.monotonic() < deadline, f"the load never got going: {self.outcomes}"
            time.sleep(0.05)

    def wait_for_more_outcomes(self, count: int, timeout_s: float = 120) -> None:
        """Returns once `count` more requests have been answered (or failed)."""
        target = len(self.outcomes) + count
        deadline = time.monotonic() + timeout_s
        while len(self.outcomes) < target:
            assert time.monotonic() < deadline, f"the load stalled at {len(self.outcomes)}"
            time.sleep(0.05)

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for loop in self._loops:
            loop.result()
        self._pool.shutdown()
        return self.outcomes


def first_success_after(kill: Kill, http: httpx.Client, request: Request,
                        limit_s: float) -> float:
    """Seconds from the kill until a good request succeeded, probing one after another."""
    while time.time() - kill.at < limit_s:
        outcome = send(http, "probe", request)
        if outcome.ok:
            return outcome.end - kill.at
        time.sleep(0.2)
    return float("inf")


def serves_full_concurrency(app_url: str, headers: httpx.Headers, request: Request,
                            concurrency: int) -> list[Outcome]:
    def one(_: int) -> Outcome:
        with httpx.Client(base_url=app_url, headers=headers, timeout=REQUEST_TIMEOUT_S) as http:
            return send(http, "full-concurrency", request)

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(concurrency)))


@pytest.mark.parametrize("modality", list(LOADS))
def test_killed_replica_fails_cleanly_and_recovers(modality, replicas, app_url, client):
    deployment = MODALITY_DEPLOYMENTS[modality]
    routes, probe = LOADS[modality]
    load = Load(app_url, client.headers, routes)
    try:
        load.wait_until_busy()
        kill = replicas.kill_one(deployment)
        recovery_s = first_success_after(kill, client, probe, RECOVERY_LIMIT_S)
        load.wait_for_more_outcomes(CLIENT_THREADS // 2)  # load on the new replica too
    finally:
        outcomes = load.stop()
    replacement = replicas.wait_replaced(kill)
    replicas.wait_healthy()

    in_flight_at_kill = [o for o in outcomes if o.start < kill.at < o.end]
    assert in_flight_at_kill, "no request was in flight when the replica died: nothing tested"
    bad = [o for o in outcomes if not (o.ok or o.clean_failure())]
    assert not bad, f"{len(bad)} of {len(outcomes)} requests failed other than with a 503 " \
                    f"and Retry-After: {bad[:10]}"
    assert recovery_s <= RECOVERY_LIMIT_S, f"no good {modality} request within " \
                                           f"{RECOVERY_LIMIT_S} s of the kill"
    assert replacement.pid != kill.pid

    batch = TEST_ARGS[modality]["batching"]["max_batch_size"]
    full = serves_full_concurrency(app_url, client.headers, probe, batch)
    assert all(o.ok for o in full), f"after the kill, {batch} concurrent requests: {full}"
    assert client.get("/readyz").status_code == 200
