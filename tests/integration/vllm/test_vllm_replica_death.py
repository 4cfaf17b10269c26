"""The vLLM text replica SIGKILLed under a light steady load: no request gets a 500, those in
flight fail cleanly (503 with Retry-After, or a stream's in-band 503) or are answered, and the
group answers again once Serve has started its replacement.

How long the replacement takes is measured by the soak bench (`--kill-modalities text`,
docs/operations.md), not here. This module runs last in its folder: the app it kills is
whole again when it ends.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.vllm.conftest import MODEL, VLLM_APP

pytestmark = pytest.mark.integration
CLIENTS = 3
ANSWERED_BEFORE_KILL = 4
REPLACED_WITHIN_S = 240  # a bound so that a broken recovery fails instead of hanging
CHAT = {"model": MODEL, "max_tokens": 8, "temperature": 0,
        "messages": [{"role": "user", "content": "Count to five."}]}


@dataclass
class Outcome:
    start: float
    end: float = 0.0
    status: int = 0  # 0: no response
    retry_after: str | None = None
    stream_error: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.stream_error is None

    @property
    def clean_failure(self) -> bool:
        if self.status == 503:
            return bool(self.retry_after and self.retry_after.strip().isdigit())
        return self.status == 200 and (self.stream_error or {}).get("code") == 503


def send(http: httpx.Client, streamed: bool) -> Outcome:
    outcome = Outcome(time.time())
    try:
        with http.stream("POST", "/v1/chat/completions",
                         json={**CHAT, "stream": streamed}) as response:
            outcome.status = response.status_code
            outcome.retry_after = response.headers.get("retry-after")
            lines = [line for line in response.iter_lines() if line] if streamed else []
    except httpx.TransportError:
        lines = []
    if streamed and outcome.status == 200:
        outcome.stream_error = stream_error(lines)
    outcome.end = time.time()
    return outcome


def stream_error(lines: list[str]) -> dict | None:
    events = [line.removeprefix("data: ") for line in lines]
    if not events or events[-1] != "[DONE]":
        return {"code": None, "message": f"no [DONE]: {events[-3:]}"}
    errors = [json.loads(e)["error"] for e in events[:-1] if "error" in json.loads(e)]
    return errors[0] if errors else None


class SteadyLoad:
    """CLIENTS threads, each sending one chat at a time, whole and streamed in turn."""

    def __init__(self, url: str) -> None:
        self.url, self.outcomes = url, []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(i,)) for i in range(CLIENTS)]
        for thread in self._threads:
            thread.start()

    def _loop(self, index: int) -> None:
        with httpx.Client(base_url=self.url, timeout=180) as http:
            while not self._stop.is_set():
                self.outcomes.append(send(http, streamed=bool(index % 2)))
                index += 1

    def wait_for(self, predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate(list(self.outcomes)):
            assert time.monotonic() < deadline, f"{what}: {self.outcomes[-10:]}"
            time.sleep(0.2)

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return self.outcomes


def test_a_killed_vllm_replica_is_replaced_without_a_500(vllm_url, ray_cluster):
    from bench.replica_kill import ReplicaView

    view = ReplicaView(ray_cluster.dashboard_url, VLLM_APP)
    view.wait_healthy()
    load = SteadyLoad(vllm_url)
    try:
        load.wait_for(lambda done: sum(o.ok for o in done) >= ANSWERED_BEFORE_KILL, 120,
                      "the load never got answers")
        kill = view.kill_one("TextGenerator")
        load.wait_for(lambda done: any(o.ok and o.start > kill.at for o in done),
                      REPLACED_WITHIN_S, "no request sent after the kill was answered")
        replacement = view.wait_replaced(kill, timeout_s=30)
    finally:
        outcomes = load.stop()
    view.wait_healthy()

    bad = [o for o in outcomes if not (o.ok or o.clean_failure)]
    assert not bad, f"{len(bad)} of {len(outcomes)} requests failed other than with a 503 " \
                    f"and Retry-After: {bad[:5]}"
    assert replacement.pid != kill.pid
