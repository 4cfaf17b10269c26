"""A short bench against the live app: client actors on the test cluster, real requests, the
report's fields, and the server-side series scraped from Ray's Prometheus export."""

from __future__ import annotations

import json

import pytest

from bench.app_launcher import Target
from bench.load import LoadSpec
from bench.run import execute_run
from bench.workloads import build_workload
from tests.conftest import METRICS_EXPORT_S

pytestmark = pytest.mark.integration
# Wait for one more of Ray's exports before the last scrape.
SCRAPE_SETTLE_S = METRICS_EXPORT_S + 1.0
STATS = {"count", "mean", "std", "min", "max", "p50", "p90", "p95", "p99"}


@pytest.fixture(scope="module")
def target(app_url, ray_cluster) -> Target:
    return Target(url=app_url, kind="external",
                  metrics_urls=[f"http://127.0.0.1:{ray_cluster.ports['metrics']}/metrics"])


def test_closed_loop_mixed_bench_reports_every_metric(target, tmp_path):
    workload = build_workload("mixed", {"mix": "chat=2,image-embedding=2,transcription=1",
                                        "prompt_len": "16", "output_len": "8"})
    spec = LoadSpec(concurrency=4, duration_s=6.0, warmup_s=1.0, timeout_s=90.0)
    report = execute_run(target, workload, spec, {"e2e": 60.0}, name="it", command="pytest",
                         out=tmp_path, scrape_interval_s=2.0,
                         scrape_settle_s=SCRAPE_SETTLE_S, quiet=True, include_records=True)

    written = json.loads((tmp_path / "it.json").read_text())
    assert written["schema"] == "mmserve-bench/run/1" and written["metrics"] == report["metrics"]
    assert "## Per route" in (tmp_path / "it.md").read_text()
    assert {"it-latency-cdf.png", "it-server.png"} <= set(report["plots"])

    m = report["metrics"]
    overall = m["overall"]
    assert overall["requests"]["ok"] >= 4 and overall["requests"]["errors"] == 0
    assert overall["request_throughput"] > 0 and overall["output_token_throughput"] > 0
    assert set(m["routes"]) <= {"chat", "image-embedding", "transcription"}
    chat = m["routes"]["chat"]
    assert set(chat["ttft"]) == STATS and set(chat["itl"]) == STATS
    assert chat["ttft"]["p50"] <= chat["e2e"]["p50"]
    assert overall["goodput"]["fraction"] == 1.0  # nothing takes a minute
    if "transcription" in m["routes"]:
        assert m["routes"]["transcription"]["wer_mean"] < 0.5  # real speech, transcribed

    records = report["records"]
    assert len(records) == overall["requests"]["total"] + m["warmup_excluded"]
    streamed = [r for r in records if r["route"] == "chat" and not r["warmup"]]
    assert all(len(r["token_times"]) >= 1 and r["output_tokens"] >= 1 for r in streamed)

    server = report["server"]
    assert server["available"] and len(server["series"]) >= 3
    summary = server["summary"]
    assert summary["replicas_max"]["ImageEmbedder"] >= 1
    assert summary["model_calls"]["ImageEmbedder/embed_image"] >= 1
    assert summary["batch_size"]["ImageEmbedder/embed_image"] >= 1.0
    assert summary["model_seconds"]["ImageEmbedder/embed_image"] > 0


def test_open_loop_sends_exactly_the_requested_count(target):
    workload = build_workload("text-embedding", {})
    spec = LoadSpec(concurrency=0, rate=4.0, duration_s=None, requests=6, warmup_s=0.0,
                    timeout_s=60.0)
    report = execute_run(target, workload, spec, {}, name="open", command="pytest", out=None,
                         scrape_interval_s=0, quiet=True)
    assert report["load"]["mode"] == "open"
    assert report["metrics"]["overall"]["requests"] == {"total": 6, "ok": 6, "errors": 0}
