"""An operator tailing the ingress replica's log sees each request's access line (route,
status, latency, request id, tenant) within a second or two, on the HAProxy ingress, whose
throughput-optimized Serve buffers the log 1,000 records at a time and writes none of it to
stderr."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from cluster.deploy import deploy, serve_config
from cluster.local_ray import LocalRay
from serve_app.tenant_keys import new_key
from tests.conftest import REPO, TEST_ARGS

# What a tail of the file may take to show the line: the flusher's interval (0.5 s) and slack.
SHOWS_WITHIN_S = 2.0
TENANT = "ops-watch"


@pytest.fixture(scope="module")
def tenant_key(tmp_path_factory) -> tuple[Path, str]:
    tenants = tmp_path_factory.mktemp("access-tenants") / "tenants.yaml"
    return tenants, new_key(tenants, TENANT)


@pytest.fixture(scope="module")
def throughput_cluster(model_dir, tmp_path_factory, tenant_key):
    args = tmp_path_factory.mktemp("access-logs") / "args.yaml"
    ingress = {**TEST_ARGS["ingress"], "tenants": {"file": str(tenant_key[0])}}
    args.write_text(yaml.safe_dump({**TEST_ARGS, "ingress": ingress}))
    env = {"PYTHONPATH": str(REPO), "MMSERVE_MODEL_DIR": model_dir}
    cluster = LocalRay(num_cpus=2, env=env, haproxy=True).start()
    try:
        deploy(cluster.dashboard_url, serve_config(str(args), cluster.http_port))
        yield cluster
    finally:
        cluster.stop()


def ingress_logs(cluster: LocalRay) -> list[Path]:
    return sorted((Path(cluster.temp_dir) / "session_latest" / "logs" / "serve").glob(
        "replica_*_Ingress_*.log"))


def lines_naming(cluster: LocalRay, text: str) -> list[str]:
    return [line for path in ingress_logs(cluster)
            for line in path.read_text(errors="replace").splitlines() if text in line]


def test_a_requests_access_line_reaches_the_ingress_log_at_once(throughput_cluster,
                                                               tenant_key):
    request_id = f"access-{uuid.uuid4().hex}"
    with httpx.Client(base_url=f"http://127.0.0.1:{throughput_cluster.http_port}",
                      timeout=60) as client:
        answer = client.get("/v1/models", headers={"x-request-id": request_id,
                                                   "Authorization": f"Bearer {tenant_key[1]}"})
    assert answer.status_code == 200
    assert ingress_logs(throughput_cluster), "no ingress replica log file"
    deadline = time.monotonic() + SHOWS_WITHIN_S
    # The ingress's first request also logs its handles' start under the same request id.
    while not (access := [line for line in lines_naming(throughput_cluster, request_id)
                          if "GET /v1/models 200" in line]):
        assert time.monotonic() < deadline, (
            f"no access line for {request_id} after {SHOWS_WITHIN_S} s")
        time.sleep(0.05)
    assert len(access) == 1, access
    assert access[0].endswith(f"tenant={TENANT}"), access[0]
