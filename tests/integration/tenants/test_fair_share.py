"""Classes and fair shares on the live app (tenants/conftest.py: the app with a tenants file and
the response cache on, so every text here is new): one tenant floods the vision group with large
embeddings requests while another, interactive, sends one small request after another. Whether
the flood is a batch tenant (the class puts the steady tenant ahead) or an interactive one (the
fair share does), the steady tenant keeps being served while the flood is in flight, and its
wait for the model stays within a few model calls of what it waited unloaded, measured in the
same test; under arrival order it would wait for the whole flood."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest

from serve_app.request_timing import parse_header
from tests.integration.tenants.conftest import bearer

pytestmark = pytest.mark.integration
CLIP = "clip-vit-b-32"
FLOOD_REQUESTS = 6
FLOOD_INPUTS = 128  # 6 x 128 texts: 48 full batches of TEST_ARGS' 16 in the vision group
UNLOADED_SAMPLES = 5
SERVED_DURING_FLOOD = 5  # arrival order would serve none until the flood has drained


@dataclass
class Answer:
    sent: float  # monotonic seconds
    done: float
    status: int
    stages: dict[str, float]  # Server-Timing, milliseconds


def new(text: str) -> str:
    """`text`, never sent before: the response cache must not answer it."""
    return f"{text} {uuid.uuid4().hex}"


@pytest.fixture
def keys(tenants_app) -> dict[str, str]:
    return tenants_app.keys


async def embed(http: httpx.AsyncClient, key: str, texts: list[str]) -> Answer:
    sent = time.monotonic()
    answer = await http.post("/v1/embeddings", headers=bearer(key),
                             json={"model": CLIP, "input": texts})
    stages = parse_header(answer.headers["server-timing"]) if answer.status_code == 200 else {}
    return Answer(sent, time.monotonic(), answer.status_code, stages)


async def steady_alone(http: httpx.AsyncClient, key: str) -> list[Answer]:
    return [await embed(http, key, [new("a steady photo")]) for _ in range(UNLOADED_SAMPLES)]


async def under_flood(http: httpx.AsyncClient, steady_key: str, flood_key: str
                      ) -> tuple[list[Answer], list[Answer]]:
    """The flood's answers and the steady tenant's, one request after another for as long as
    the flood is in flight."""
    flood = [asyncio.ensure_future(embed(http, flood_key, [new(f"flood {r} text {i}")
                                                           for i in range(FLOOD_INPUTS)]))
             for r in range(FLOOD_REQUESTS)]
    steady: list[Answer] = []
    while not all(request.done() for request in flood):
        steady.append(await embed(http, steady_key, [new("a steady photo")]))
    return [request.result() for request in flood], steady


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def waited(answer: Answer) -> float:
    """Milliseconds the request's text waited in the vision replica before its model call."""
    return answer.stages["vision-queue"] + answer.stages.get("vision-batch", 0.0)


@pytest.mark.parametrize("flood_tenant", ["flood-batch", "flood-interactive"])
def test_a_steady_tenant_is_served_ahead_of_anothers_flood(keys, app_url, flood_tenant):
    async def scenario():
        async with httpx.AsyncClient(base_url=app_url, timeout=180) as http:
            await embed(http, keys["steady"], [new("warm the text tower")])
            alone = await steady_alone(http, keys["steady"])
            flood, steady = await under_flood(http, keys["steady"], keys[flood_tenant])
        return alone, flood, steady

    alone, flood, steady = asyncio.run(scenario())
    assert all(answer.status == 200 for answer in alone + flood + steady)
    flood_ended = max(answer.done for answer in flood)
    during = [answer for answer in steady if answer.done < flood_ended]
    # Arrival order: the steady tenant's first request waits behind the whole flood.
    assert len(during) >= SERVED_DURING_FLOOD, (len(during), len(steady))
    # Ahead of the flood, a request waits for the model call running when it came (at most a
    # full batch), where unloaded it waited out the batch window.
    model_ms = p95([answer.stages["vision-model"] for answer in during])
    bound_ms = 2 * model_ms + p95([waited(answer) for answer in alone])
    assert p95([waited(answer) for answer in during]) <= bound_ms, (
        [waited(answer) for answer in during], model_ms)
