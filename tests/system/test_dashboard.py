"""The Grafana dashboard against a real Prometheus: Debian's `prometheus` scrapes the test Ray
head's metrics port every second while a mixed load runs through the live app (chat whole and
streamed, text and image embeddings, a transcription, the pipeline whole and streamed, a 404
and a 400), with the response cache on a real redis-server whose entries are overwritten (an invalid
entry) and which is killed at the end (so the cache panels, hit ratio, invalid entries and
store errors included, have data too). Then every query of every
panel in the committed cluster/grafana/mmserve.json must return at least one sample with a
number in it.

MMSERVE_DASHBOARD_PNG=PATH also draws the panels from this run into PATH (cluster.dashboard_png),
under a longer load (MMSERVE_DASHBOARD_LOAD_S, default 120 s then).
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from cluster.dashboard import OUT as DASHBOARD
from cluster.dashboard import panel_targets, substitute
from cluster.deploy import app_config
from cluster.deploy import deploy as deploy_config
from cluster.redis_server import RedisServer
from tests.conftest import APP_NAME, TEST_ARGS, deploy
from tests.media import b64, png_image, speech_wav
from tests.prometheus_server import PrometheusServer

pytestmark = pytest.mark.integration
CHAT_MODEL, CLIP_MODEL, WHISPER_MODEL = "smollm2-135m-instruct", "clip-vit-b-32", "whisper-base"
# Grafana's $__rate_interval is about 4 scrape intervals on a live dashboard; here the window
# spans the whole test, so every series the load made is still in it when the queries run.
VARIABLES = {"application": APP_NAME, "__rate_interval": "5m"}
# Ray's agent exports every few seconds on the test cluster (tests/conftest.py): time for many.
EXPORT_WAIT_S = 60
# Histograms from the ingress (streams, pipeline) and from the replicas' batchers.
FIRST_SEEN = ("ray_mmserve_time_to_first_token_seconds_count",
              "ray_mmserve_pipeline_stage_seconds_count", "ray_mmserve_queue_wait_seconds_count")


@pytest.fixture(scope="module")
def prometheus(ray_cluster, app_url, tmp_path_factory):
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"),
                              [f"127.0.0.1:{ray_cluster.ports['metrics']}"], scrape_s=1)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def cached_on_redis(ray_cluster, app_url, tmp_path_factory):
    """The test app with its response cache on a real redis-server; TEST_ARGS again after."""
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start()
    config = app_config({**TEST_ARGS, "cache": {"enabled": True, **redis.cache_settings()}},
                        None, ray_cluster.http_port, name=APP_NAME)
    deploy_config(f"http://127.0.0.1:{ray_cluster.ports['dashboard']}", config, 300)
    try:
        yield redis
    finally:
        deploy(ray_cluster)
        redis.kill()


def chat(client: httpx.Client, nonce: str, stream: bool) -> None:
    body = {"model": CHAT_MODEL, "max_tokens": 12, "temperature": 0,
            "messages": [{"role": "user", "content": f"Name three colours ({nonce})."}]}
    if not stream:
        assert client.post("/v1/chat/completions", json=body).status_code == 200
        return
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as answer:
        assert answer.status_code == 200
        assert sum(1 for line in answer.iter_lines() if line.startswith("data: ")) > 3


def embeddings(client: httpx.Client, nonce: str) -> None:
    text = client.post("/v1/embeddings", json={"model": CLIP_MODEL,
                                               "input": [f"a photo of {nonce}", "a cat"]})
    assert text.status_code == 200, text.text
    color = tuple(int(nonce[i:i + 2], 16) for i in (0, 2, 4))
    image = client.post("/v1/embeddings", json={"model": CLIP_MODEL + "-image",
                                                "input": b64(png_image(color))})
    assert image.status_code == 200, image.text


def transcription(client: httpx.Client, wav: bytes) -> None:
    answer = client.post("/v1/audio/transcriptions",
                         files={"file": ("a.wav", wav, "audio/wav")},
                         data={"model": WHISPER_MODEL}, headers={"Cache-Control": "no-cache"})
    assert answer.status_code == 200, answer.text


def pipeline(client: httpx.Client, wav: bytes, nonce: str, stream: bool) -> None:
    body = {"audio": b64(wav), "image": b64(png_image()), "labels": ["a cat", "a car"],
            "prompt": f"Summarise what you heard and saw ({nonce}).", "max_tokens": 8,
            "stream": stream}
    if not stream:
        answer = client.post("/v1/pipeline", json=body)
        assert answer.status_code == 200, answer.text
        return
    with client.stream("POST", "/v1/pipeline", json=body) as answer:
        assert answer.status_code == 200
        assert any(line.startswith("data: ") for line in answer.iter_lines())


def errors(client: httpx.Client) -> None:
    assert client.post("/v1/embeddings", json={"model": "no-such-model",
                                               "input": "x"}).status_code == 404
    assert client.post("/v1/chat/completions", json={"model": CHAT_MODEL}).status_code == 400


def mixed_round(client: httpx.Client, wav: bytes) -> None:
    """One of each kind of request, several at once, so batches form and queues fill."""
    calls = [lambda n: chat(client, n, False), lambda n: chat(client, n, True),
             lambda n: embeddings(client, n), lambda n: embeddings(client, n),
             lambda n: transcription(client, wav), lambda n: pipeline(client, wav, n, False),
             lambda n: pipeline(client, wav, n, True), lambda n: errors(client)]
    with ThreadPoolExecutor(len(calls)) as pool:
        for done in [pool.submit(call, uuid.uuid4().hex) for call in calls]:
            done.result()


def cache_hit_then_store_error(client: httpx.Client, redis: RedisServer) -> None:
    body = {"model": CLIP_MODEL, "input": [f"a photo of {uuid.uuid4().hex}"]}
    first, second = client.post("/v1/embeddings", json=body), client.post("/v1/embeddings",
                                                                           json=body)
    assert (first.headers.get("X-Cache"), second.headers.get("X-Cache")) == ("miss", "hit")
    plant_over_every_entry(redis)
    planted = client.post("/v1/embeddings", json=body)
    assert planted.status_code == 200 and planted.headers["X-Cache"] == "miss"
    redis.kill()
    down = client.post("/v1/embeddings", json={**body, "input": ["a store that is gone"]})
    assert down.status_code == 200 and down.headers["X-Cache"] == "miss"


def plant_over_every_entry(redis: RedisServer) -> None:
    """Overwrites every cache entry with unsigned bytes, as someone who can write to Redis
    could: each read of one is then an invalid entry, and a miss."""
    import redis as redis_client

    store = redis_client.Redis.from_url(redis.url)
    for key in store.scan_iter("mmserve:cache:*"):
        store.set(key, b"planted", keepttl=True)
    store.close()


def wait_for_cache(client: httpx.Client) -> None:
    """Until the redeployed ingress (the one with a cache) answers."""
    deadline = time.monotonic() + 120
    while "X-Cache" not in client.post("/v1/embeddings", json={
            "model": CLIP_MODEL, "input": ["warm up"]}).headers:
        assert time.monotonic() < deadline, "the ingress with a cache never answered"
        time.sleep(1)


def observations(prometheus: PrometheusServer) -> dict[tuple, float]:
    """Each series of the FIRST_SEEN histograms and its count (old replicas' too: a
    redeploy's replicas are new series beside them)."""
    return {(name, *sorted(sample["metric"].items())): float(sample["value"][1])
            for name in FIRST_SEEN
            for sample in prometheus.query(f'{name}{{application="{APP_NAME}"}}')}


def wait_for_more(prometheus: PrometheusServer, seen: dict[tuple, float]) -> None:
    """Until every FIRST_SEEN histogram has a series that is new or grew since `seen`."""
    deadline = time.monotonic() + EXPORT_WAIT_S
    while True:
        grown = {key[0] for key, count in observations(prometheus).items()
                 if count > seen.get(key, 0.0)}
        if grown == set(FIRST_SEEN):
            return
        assert time.monotonic() < deadline, f"Prometheus never saw the load's {FIRST_SEEN}"
        time.sleep(2)


def without_data(prometheus: PrometheusServer, board: dict) -> list[str]:
    """The panel queries that return no sample with a number (NaN is no data to Grafana)."""
    missing = []
    for title, expr in panel_targets(board):
        result = prometheus.query(substitute(expr, VARIABLES))
        if not any(not math.isnan(float(sample["value"][1])) for sample in result):
            missing.append(f"{title}: {expr}")
    return missing


def test_every_dashboard_panel_has_data_from_a_live_app(prometheus, cached_on_redis, client):
    board = json.loads(DASHBOARD.read_text())
    wav = speech_wav()
    picture = os.environ.get("MMSERVE_DASHBOARD_PNG")
    load_s = float(os.environ.get("MMSERVE_DASHBOARD_LOAD_S", 120 if picture else 0))
    started = time.time()
    wait_for_cache(client)
    mixed_round(client, wav)
    # A series first scraped at its final value never increases, and rate() over it is 0 (a
    # quantile of nothing): so a second round, once Prometheus has seen the first.
    seen = observations(prometheus)
    mixed_round(client, wav)
    wait_for_more(prometheus, seen)
    mixed_round(client, wav)
    while time.time() - started < load_s:
        mixed_round(client, wav)
    cache_hit_then_store_error(client, cached_on_redis)

    deadline = time.monotonic() + EXPORT_WAIT_S
    while (missing := without_data(prometheus, board)) and time.monotonic() < deadline:
        time.sleep(2)
    if picture:
        from cluster.dashboard_png import render

        time.sleep(30)  # so the last events (the store errors) show as lines, not points
        render(board, prometheus.url, started - 30, time.time(), Path(picture),
               {"application": APP_NAME})
    assert not missing, "panels without data:\n" + "\n".join(missing)
