"""Serve's HAProxy ingress on a cluster of its own: every route answers through it, bad input
still gets its JSON error, and stopping the cluster ends its HAProxy (which leaves the node's
process group) and nothing else."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import yaml

from cluster.deploy import deploy, serve_config
from cluster.haproxy_ingress import haproxy_env, haproxy_pids, uses_haproxy
from cluster.local_ray import LocalRay
from tests.conftest import REPO, TEST_ARGS
from tests.integration.test_streaming import read_events
from tests.media import b64, png_image, speech_wav

CHAT = {"model": "smollm2-135m-instruct", "max_tokens": 8, "temperature": 0,
        "messages": [{"role": "user", "content": "Name a colour."}]}


def test_every_haproxy_file_lives_in_the_clusters_own_dir(tmp_path):
    env = haproxy_env(str(tmp_path), stats_port=41001, metrics_port=41002)
    paths = [value for name, value in env.items() if "PATH" in name or "FILE" in name
             or name.endswith("STATE_BASE")]
    assert len(paths) == 5 and all(p.startswith(str(tmp_path)) for p in paths)
    assert env["RAY_SERVE_HAPROXY_STATS_PORT"] == "41001"
    assert env["RAY_SERVE_HAPROXY_METRICS_PORT"] == "41002"


def test_only_haproxy_processes_of_that_dir_are_found(tmp_path):
    proc = tmp_path / "proc"
    mine, other, not_haproxy = "/tmp/mmray-a/haproxy", "/tmp/mmray-b/haproxy", "/usr/bin/cat"
    for pid, argv in {"11": ["/x/bin/haproxy", "-f", f"{mine}/h/haproxy.cfg"],
                      "12": ["/x/bin/haproxy", "-f", f"{other}/h/haproxy.cfg"],
                      "13": [not_haproxy, f"{mine}/h/haproxy.cfg"]}.items():
        (proc / pid).mkdir(parents=True)
        (proc / pid / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
    (proc / "self").mkdir()
    assert haproxy_pids(mine, proc) == [11]


def test_an_unknown_ingress_is_refused():
    assert uses_haproxy("haproxy") and not uses_haproxy("proxy")
    with pytest.raises(ValueError, match="proxy, haproxy"):
        uses_haproxy("nginx")


@pytest.fixture(scope="module")
def haproxy_cluster(model_dir, tmp_path_factory):
    args = tmp_path_factory.mktemp("haproxy") / "args.yaml"
    args.write_text(yaml.safe_dump(TEST_ARGS))
    env = {"PYTHONPATH": str(REPO), "MMSERVE_MODEL_DIR": model_dir}
    cluster = LocalRay(num_cpus=2, env=env, haproxy=True).start()
    try:
        deploy(cluster.dashboard_url, serve_config(str(args), cluster.http_port))
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.integration
def test_routes_answer_through_haproxy_and_its_process_ends_with_the_cluster(haproxy_cluster):
    assert haproxy_pids(haproxy_cluster.haproxy_dir), "HAProxy is not what serves HTTP"
    with httpx.Client(base_url=f"http://127.0.0.1:{haproxy_cluster.http_port}",
                      timeout=180) as client:
        _wait_until_ready(client)
        image = client.post("/v1/embeddings",
                            json={"model": "clip-vit-b-32-image", "input": b64(png_image())})
        assert len(image.json()["data"][0]["embedding"]) == 512
        audio = client.post("/v1/audio/transcriptions", data={"model": "whisper-base"},
                            files={"file": ("a.wav", speech_wav(), "audio/wav")})
        assert "fox" in audio.json()["text"].lower()
        events = read_events(client, {**CHAT, "stream": True})
        assert json.loads(events[0])["choices"][0]["delta"]["role"] == "assistant"
        assert events[-1] == "[DONE]"
        huge = {"model": "clip-vit-b-32", "input": "x" * (3 * 1024 * 1024)}
        too_big = client.post("/v1/embeddings", json=huge)
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == 413
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    haproxy_cluster.stop()
    assert haproxy_pids(haproxy_cluster.haproxy_dir) == []


def _wait_until_ready(client: httpx.Client, timeout_s: float = 60) -> None:
    """HAProxy learns of the ingress replicas a moment after the deploy reports them healthy."""
    deadline = time.monotonic() + timeout_s
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the app never became ready behind HAProxy"
        time.sleep(0.5)

