"""A vision group whose batchers hold a bounded queue (batching.max_waiting_items, with
max_ongoing_requests above it plus a batch), on the live app of tenants/conftest.py: one
tenant floods it with more single-image requests than its replica holds, while another sends
one request after another. The flood is shed with 429s that carry a Retry-After; the steady
tenant is never shed, and waits in the replica's queue for a few model calls at most, as it
does unloaded: its requests are not left in Serve's router queue behind the flood."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from cluster.deploy import app_config, with_overrides
from cluster.deploy import deploy as deploy_config
from deployments.core.config import AppConfig, Batching, load_config
from deployments.replicas.serve_options import GROUP_DEPLOYMENTS, deployment_options
from serve_app.request_timing import parse_header
from tests.conftest import APP_NAME
from tests.integration.tenants.conftest import bearer
from tests.integration.tenants.test_fair_share import Answer, p95, waited
from tests.media import b64, png_image

pytestmark = pytest.mark.integration
IMAGE_MODEL = "clip-vit-b-32-image"
WAITING_ITEMS = 16  # TEST_ARGS: batches of 16, max_ongoing_requests 32 (the default)
FLOOD_CLIENTS = 96  # three times what the replica holds
STEADY_REQUESTS = 8
VISION = GROUP_DEPLOYMENTS["vision"]


@pytest.fixture
def bounded_vision(tenants_app, ray_cluster, client):
    """The tenants app with the vision batchers' queue bounded; as it was afterwards. Both
    through the vision deployment's user_config (a `deployments:` override, the args as they
    are), so its replica is reconfigured in place rather than every group restarted."""
    config = app_config(tenants_app.args, None, ray_cluster.http_port, name=APP_NAME)
    app = load_config(tenants_app.args)
    bounded = app.vision.batching.model_copy(update={"max_waiting_items": WAITING_ITEMS})
    deploy_config(ray_cluster.dashboard_url,
                  with_overrides(config, [vision_user_config(app, bounded)]), 300)
    try:
        yield tenants_app.keys
    finally:
        deploy_config(ray_cluster.dashboard_url,
                      with_overrides(config, [vision_user_config(app, app.vision.batching)]),
                      300)


def vision_user_config(app: AppConfig, batching: Batching) -> dict:
    """The vision deployment's override: its user_config with these batching settings."""
    settings = app.vision.model_copy(update={"batching": batching})
    options = deployment_options(settings, VISION, app.slo.scheduling)
    return {"name": VISION, "user_config": options["user_config"]}


async def embed_image(http: httpx.AsyncClient, key: str, seed: int) -> httpx.Response:
    return await http.post("/v1/embeddings", headers=bearer(key),
                           json={"model": IMAGE_MODEL, "input": [b64(image(seed))]})


def image(seed: int) -> bytes:
    """An image of its own per seed: the response cache (on in this app) never answers it."""
    return png_image((seed % 256, seed // 256 % 256, seed // 65536 % 256), size=64)


async def flood_until(http: httpx.AsyncClient, key: str, done: asyncio.Event,
                      first_seed: int) -> list[httpx.Response]:
    """One flood client: a request after another, a shed one sent again after its
    Retry-After."""
    answers, seed = [], first_seed
    while not done.is_set():
        answer = await embed_image(http, key, seed)
        answers.append(answer)
        seed += FLOOD_CLIENTS
        if answer.status_code == 429:
            await asyncio.sleep(float(answer.headers.get("Retry-After", 1)))
    return answers


def test_a_flood_is_shed_in_the_replica_and_a_steady_tenant_is_served(bounded_vision,
                                                                      app_url):
    keys = bounded_vision

    async def scenario():
        limits = httpx.Limits(max_connections=FLOOD_CLIENTS + 4)
        async with httpx.AsyncClient(base_url=app_url, timeout=180, limits=limits) as http:
            await embed_image(http, keys["steady"], 0)  # warm
            alone = [await embed_image(http, keys["steady"], 1 + i) for i in range(4)]
            done = asyncio.Event()
            flood = [asyncio.ensure_future(flood_until(http, keys["team-a"], done, 100 + i))
                     for i in range(FLOOD_CLIENTS)]
            await asyncio.sleep(2)  # the replica full, the flood being shed
            steady = [await embed_image(http, keys["steady"], 10_000 + i)
                      for i in range(STEADY_REQUESTS)]
            done.set()
            flooded = [answer for answers in await asyncio.gather(*flood)
                       for answer in answers]
        return alone, steady, flooded

    alone, steady, flooded = asyncio.run(scenario())
    assert all(answer.status_code == 200 for answer in alone + steady), [
        (answer.status_code, answer.text[:200]) for answer in steady]
    shed = [answer for answer in flooded if answer.status_code == 429]
    assert shed, sorted({answer.status_code for answer in flooded})
    assert all(int(answer.headers["Retry-After"]) >= 1 for answer in shed)
    assert "queue is full" in shed[0].json()["error"]["message"]
    during = [timed(answer) for answer in steady]
    # Ahead of the flood's queued items, a request waits for the model call running when it
    # came and at most one more (the fair share alternates), where unloaded it waited for none.
    bound_ms = 2 * p95([answer.stages["vision-model"] for answer in during]) + p95(
        [waited(timed(answer)) for answer in alone])
    assert p95([waited(answer) for answer in during]) <= bound_ms


def timed(answer: httpx.Response) -> Answer:
    return Answer(0.0, 0.0, answer.status_code, parse_header(answer.headers["server-timing"]))
