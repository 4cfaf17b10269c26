"""Usage per tenant on the live app (tenants/conftest.py: the app with a tenants file, its
totals in a real redis-server; the in-process totals: tests/unit/test_usage_totals.py). Two
tenants send known requests; GET /v1/usage as the admin equals what the clients' answers
reported (usage fields, a transcription's duration, images sent), a non-admin gets 403 and no
key 401; the ray_mmserve_tenant_* counters on Ray's metrics port show the same by tenant."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.tenants.conftest import TenantsApp, bearer
from tests.media import b64, png_image, speech_wav

pytestmark = pytest.mark.integration
CHAT_MODEL, CLIP_MODEL, WHISPER_MODEL = "smollm2-135m-instruct", "clip-vit-b-32", "whisper-base"
EXPORT_WAIT_S = 60  # Ray's agent exports every METRICS_EXPORT_S on the test cluster
TOLERANCE = 0.01  # what the clients were told, within 1%


@dataclass
class Told:
    """What the answers to one tenant's requests reported."""

    requests: int = 0
    counts: Counter = field(default_factory=Counter)
    groups: set[str] = field(default_factory=set)


def chat(client: httpx.Client, key: str, told: Told, content: str) -> None:
    answer = client.post("/v1/chat/completions", headers=bearer(key), json={
        "model": CHAT_MODEL, "max_tokens": 12,
        "messages": [{"role": "user", "content": content}]})
    assert answer.status_code == 200, answer.text
    tokens(told, answer.json()["usage"])


def streamed_chat(client: httpx.Client, key: str, told: Told) -> None:
    body = {"model": CHAT_MODEL, "max_tokens": 12, "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Count to five."}]}
    with client.stream("POST", "/v1/chat/completions", headers=bearer(key),
                       json=body) as stream:
        assert stream.status_code == 200
        events = [line[len("data: "):] for line in stream.iter_lines()
                  if line.startswith("data: ")]
    usage = [json.loads(event)["usage"] for event in events
             if event != "[DONE]" and json.loads(event).get("usage")]
    assert len(usage) == 1, events
    tokens(told, usage[0])


def tokens(told: Told, usage: dict) -> None:
    told.requests += 1
    told.counts["prompt_tokens"] += usage["prompt_tokens"]
    told.counts["completion_tokens"] += usage["completion_tokens"]
    told.groups.add("text")


def text_embedding(client: httpx.Client, key: str, told: Told) -> None:
    answer = client.post("/v1/embeddings", headers=bearer(key), json={
        "model": CLIP_MODEL, "input": ["a photo of a cat", "two dogs on a red sofa"]})
    assert answer.status_code == 200, answer.text
    told.requests += 1
    told.counts["prompt_tokens"] += answer.json()["usage"]["prompt_tokens"]
    told.groups.add("vision")


def image_embedding(client: httpx.Client, key: str, told: Told) -> None:
    images = [b64(png_image((10, 200, 30))), b64(png_image((30, 30, 220)))]
    answer = client.post("/v1/embeddings", headers=bearer(key),
                         json={"model": CLIP_MODEL + "-image", "input": images})
    assert answer.status_code == 200, answer.text
    told.requests += 1
    told.counts["images"] += len(answer.json()["data"])
    told.groups.add("vision")


def transcription(client: httpx.Client, key: str, told: Told) -> None:
    answer = client.post("/v1/audio/transcriptions", headers=bearer(key),
                         files={"file": ("a.wav", speech_wav(), "audio/wav")},
                         data={"model": WHISPER_MODEL, "response_format": "verbose_json"})
    assert answer.status_code == 200, answer.text
    told.requests += 1
    told.counts["audio_seconds"] += answer.json()["duration"]
    told.groups.add("audio")


def send_known_requests(client: httpx.Client, tenants: TenantsApp) -> dict[str, Told]:
    team_a, team_b = Told(), Told()
    key_a, key_b = tenants.keys["billed-a"], tenants.keys["billed-b"]
    chat(client, key_a, team_a, "Name a colour.")
    chat(client, key_a, team_a, "Name a fruit.")
    streamed_chat(client, key_a, team_a)
    text_embedding(client, key_a, team_a)
    image_embedding(client, key_b, team_b)
    transcription(client, key_b, team_b)
    chat(client, key_b, team_b, "Name a city.")
    return {"billed-a": team_a, "billed-b": team_b}


def summed(rows: list[dict]) -> Counter:
    """A tenant's days (or hours) added up: the run may straddle midnight or an hour."""
    total: Counter = Counter()
    for row in rows:
        for name, value in row.items():
            if name == "model_seconds":
                for group, seconds in value.items():
                    total[f"model_seconds.{group}"] += seconds
            elif name != "start":
                total[name] += value
    return total


def close(reported: float, told: float) -> bool:
    return abs(reported - told) <= TOLERANCE * max(abs(told), 1e-9)


def test_usage_and_the_counters_by_tenant_are_what_the_clients_were_told(tenants_app, client,
                                                                          ray_cluster):
    told = send_known_requests(client, tenants_app)
    assert client.get("/v1/usage").status_code == 401
    refused = client.get("/v1/usage", headers=bearer(tenants_app.keys["billed-a"]))
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    told["billed-a"].requests += 1  # that refused read was admitted: it counts
    answer = client.get("/v1/usage", headers=bearer(tenants_app.keys["ops"]))
    assert answer.status_code == 200, answer.text
    usage = answer.json()
    assert (usage["object"], usage["store"]) == ("usage", "redis")
    for name, what in told.items():
        for period in ("days", "hours"):
            assert matches(summed(usage["tenants"][name][period]), what), (name, period, usage)

    metrics_url = f"http://127.0.0.1:{ray_cluster.ports['metrics']}/metrics"
    deadline = time.monotonic() + EXPORT_WAIT_S
    while not counters_match(metrics_url, told):
        assert time.monotonic() < deadline, (tenant_counters(metrics_url, set(told)), told)
        time.sleep(1)


def counters_match(metrics_url: str, told: dict[str, Told]) -> bool:
    exported = tenant_counters(metrics_url, set(told))
    return all(matches(exported.get(name, Counter()), what) for name, what in told.items())


def tenant_counters(metrics_url: str, names: set[str]) -> dict[str, Counter]:
    """Each tenant's ray_mmserve_tenant_* counters, summed over the ingress's replicas, named
    as in the usage report."""
    found: dict[str, Counter] = {}
    text = httpx.get(metrics_url, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            tenant = sample.labels.get("tenant")
            if tenant not in names or not sample.name.startswith("ray_mmserve_tenant_") \
                    or not sample.name.endswith("_total"):
                continue
            counts = found.setdefault(tenant, Counter())
            name = sample.name.removeprefix("ray_mmserve_tenant_").removesuffix("_total")
            if name == "tokens":
                name = f"{sample.labels['kind']}_tokens"
            elif name == "model_seconds":
                name = f"model_seconds.{sample.labels['group']}"
            counts[name] += sample.value
    return found


def matches(reported: Counter, told: Told) -> bool:
    """The tenant's requests exactly, every count within 1% of what the answers said, and
    model seconds from just the groups its requests reached."""
    groups = {name.removeprefix("model_seconds.") for name, value in reported.items()
              if name.startswith("model_seconds.") and value > 0}
    return (reported["requests"] == told.requests and groups == told.groups
            and all(close(reported[name], value) for name, value in told.counts.items()))
