"""The shared test app redeployed once for this folder's tests: a tenants file holding every
tenant they use, with the limits, the usage totals and the response cache (signed entries) in
one real redis-server, as several ingress replicas keep them (the in-process buckets, totals
and cache namespaces: tests/unit). Then the app goes back to TEST_ARGS (anonymous, cache off)
for the tests after this folder."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from cluster.deploy import app_config
from cluster.deploy import deploy as deploy_config
from cluster.redis_server import RedisServer
from serve_app.tenant_keys import new_key
from tests.conftest import APP_NAME, TEST_ARGS, deploy

REQUESTS_PER_MINUTE = 3  # one every 20 s
TOKENS_PER_MINUTE = 60  # one a second: a chat's tokens show in the bucket for a while
SHARED = {"diagnostics": True, "cache_namespace": "shared"}
TENANTS = {  # name -> its entry's fields beside its key
    "limited": {"requests_per_minute": REQUESTS_PER_MINUTE},
    "tokens": {"tokens_per_minute": TOKENS_PER_MINUTE},
    "streamer": {"tokens_per_minute": TOKENS_PER_MINUTE},
    "spare": {},
    "billed-a": {}, "billed-b": {}, "ops": {"admin": True},
    "team-a": {"diagnostics": True}, "team-b": {"diagnostics": True}, "quiet": {},
    "pool-1": SHARED, "pool-2": SHARED,
    "flood-batch": {"priority": "batch", "diagnostics": True},
    "flood-interactive": {"priority": "interactive", "diagnostics": True},
    "steady": {"priority": "interactive", "diagnostics": True},
}


@dataclass
class TenantsApp:
    path: Path  # the tenants file the ingress reads
    keys: dict[str, str]  # tenant -> its key
    args: dict = field(default_factory=dict)  # the builder's args it was deployed with


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def tenants_file(folder: Path) -> TenantsApp:
    """The tenants file TENANTS describe, written to `folder` (0600)."""
    path = folder / "tenants.yaml"
    keys = {name: new_key(path, name) for name in TENANTS}
    raw = yaml.safe_load(path.read_text())
    for entry in raw["tenants"]:
        entry.update(TENANTS[entry["name"]])
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    path.chmod(0o600)
    return TenantsApp(path, keys)


@pytest.fixture(scope="package")
def tenants_app(ray_cluster, app_url, client, tmp_path_factory):
    made = tenants_file(tmp_path_factory.mktemp("tenants"))
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    args = {**TEST_ARGS, "ingress": {**TEST_ARGS["ingress"], "tenants": {"file": str(made.path)}},
            "cache": {"enabled": True, "chat": True, **server.cache_settings()}}
    config = app_config(args, None, ray_cluster.http_port, name=APP_NAME)
    deploy_config(f"http://127.0.0.1:{ray_cluster.ports['dashboard']}", config, 300)
    made.args = args
    try:
        wait_for_keys(client, made.keys["spare"])
        yield made
    finally:
        deploy(ray_cluster)
        server.kill()


def wait_for_keys(client: httpx.Client, key: str) -> None:
    """Until the redeployed ingress (the one with tenants) is the one answering: the old one
    takes any request without a key."""
    deadline = time.monotonic() + 60
    in_a_row = 0
    while in_a_row < 5:
        assert time.monotonic() < deadline, "the ingress with tenants never answered"
        in_a_row = in_a_row + 1 if client.get("/v1/models").status_code == 401 else 0
        time.sleep(0.2)
    assert client.get("/v1/models", headers=bearer(key)).status_code == 200
