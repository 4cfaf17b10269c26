"""An operator tailing the ingress replica's log sees each request's access line within a
second or two, on the HAProxy ingress, whose throughput-optimized Serve buffers the log 1,000
records at a time and writes none of it to stderr."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from cluster.deploy import deploy, serve_config
from cluster.local_ray import LocalRay
from tests.conftest import REPO, TEST_ARGS

# What a tail of the file may take to show the line: the flusher's interval (0.5 s) and slack.
SHOWS_WITHIN_S = 2.0


@pytest.fixture(scope="module")
def throughput_cluster(model_dir, tmp_path_factory):
    args = tmp_path_factory.mktemp("access-logs") / "args.yaml"
    args.write_text(yaml.safe_dump(TEST_ARGS))
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


def test_a_requests_access_line_reaches_the_ingress_log_at_once(throughput_cluster):
    request_id = f"access-{uuid.uuid4().hex}"
    with httpx.Client(base_url=f"http://127.0.0.1:{throughput_cluster.http_port}",
                      timeout=60) as client:
        answer = client.get("/v1/models", headers={"x-request-id": request_id})
    assert answer.status_code == 200
    assert ingress_logs(throughput_cluster), "no ingress replica log file"
    deadline = time.monotonic() + SHOWS_WITHIN_S
    while not (lines := lines_naming(throughput_cluster, request_id)):
        assert time.monotonic() < deadline, (
            f"no access line for {request_id} after {SHOWS_WITHIN_S} s")
        time.sleep(0.05)
    assert any("GET /v1/models 200" in line for line in lines), lines
