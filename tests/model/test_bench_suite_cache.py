"""The cache suite's arithmetic and its inputs: Server-Timing read at the ingress (the client's
latency where absent), X-Cache counted, the halves averaged, the hit-path goal; fresh inputs
that are new bytes with the same pixels."""

from __future__ import annotations

import base64
import io
import random
from types import SimpleNamespace

import pytest
from PIL import Image

from bench.records import RequestRecord
from bench.server_timing import parse_server_timing
from bench.suites.cache import hit_label, repeat_label, summarize
from bench.suites.headers import header_summary
from bench.workloads import build_workload
from bench.workloads.repeats import RepeatedEmbeddingWorkload, fresh_jpeg


def record(e2e: float, cache: str | None = "hit", timing: str | None = None,
           warmup: bool = False, status: int = 200) -> RequestRecord:
    headers = {k: v for k, v in (("X-Cache", cache), ("Server-Timing", timing)) if v}
    return RequestRecord(route="r", start=0.0, end=e2e, status=status, headers=headers,
                         warmup=warmup)


def test_server_timing_reads_milliseconds_as_seconds():
    assert parse_server_timing("ingress;dur=1.2, total;dur=1.5") == pytest.approx(
        {"ingress": 0.0012, "total": 0.0015})
    assert parse_server_timing('total;desc="all";dur="2"') == pytest.approx({"total": 0.002})
    assert parse_server_timing("cache, total;dur=x") == {}


def test_the_ingress_latency_is_servers_total_else_the_clients():
    records = [record(0.010, timing=f"ingress;dur=1, total;dur={ms}") for ms in range(1, 101)]
    records += [record(0.5, cache="miss", warmup=True), record(0.3, status=500)]
    summary = header_summary(records)
    assert summary["responses"] == 100 and summary["x_cache"] == {"hit": 100}
    assert summary["hit_share"] == 1.0 and summary["server_timing_share"] == 1.0
    assert summary["ingress_source"] == "server-timing total"
    assert summary["ingress"]["p50"] == pytest.approx(0.0505)
    assert summary["client_e2e"]["p99"] == pytest.approx(0.010)
    plain = header_summary([record(0.002), record(0.004, cache="miss"), record(0.003, None)])
    assert plain["ingress_source"] == "client e2e" and plain["server_total"] is None
    assert plain["ingress"] == plain["client_e2e"]
    assert plain["x_cache"] == {"hit": 1, "miss": 1, "none": 1}
    assert plain["hit_share"] == pytest.approx(1 / 3)


def report(clients: int, items_per_s: float, p50: float, p95: float, hit_share: float,
           ingress_p99_s: float, source: str = "server-timing total") -> dict:
    ingress = {"p50": ingress_p99_s / 2, "p99": ingress_p99_s}
    return {"load": {"concurrency": clients},
            "metrics": {"overall": {"request_throughput": items_per_s,
                                    "item_throughput": items_per_s,
                                    "requests": {"total": 10, "ok": 10, "errors": 0},
                                    "e2e": {"p50": p50, "p95": p95, "p99": p95}}},
            "response_headers": {"responses": 10, "hit_share": hit_share,
                                 "x_cache": {"hit": 5, "miss": 5}, "ingress": ingress,
                                 "ingress_source": source,
                                 "client_e2e": {"p50": 0.004, "p99": 0.008}}}


def test_halves_are_averaged_and_the_worst_hit_p99_is_held_to_the_goal():
    runs = {hit_label(b, m, c): report(c, 300.0, 0.003, 0.005, 1.0, 0.002)
            for b in ("memory", "redis") for m in ("text", "image") for c in (1, 16)}
    runs[hit_label("redis", "image", 16)] = report(16, 200.0, 0.01, 0.02, 1.0, 0.006)
    runs[repeat_label("on", 1)] = report(16, 30.0, 0.4, 0.8, 0.5, 0.4)
    runs[repeat_label("off", 1)] = report(16, 14.0, 1.0, 1.6, 0.0, 1.0)
    runs[repeat_label("on", 2)] = report(16, 26.0, 0.6, 1.2, 0.4, 0.6)
    runs[repeat_label("off", 2)] = report(16, 16.0, 1.0, 2.4, 0.0, 1.0)
    results, markdown = summarize(SimpleNamespace(runs=runs))
    ratios = results["ratios"]
    assert results["repeats_mean"]["on"]["images_per_s"] == 28.0
    assert ratios["throughput_on_vs_off"] == pytest.approx(28.0 / 15.0)
    assert ratios["ideal_throughput_on_vs_off"] == pytest.approx(1 / (1 - 0.45))
    assert ratios["e2e_p50_on_vs_off"] == pytest.approx(0.5)
    assert ratios["e2e_p95_on_vs_off"] == pytest.approx(0.5)
    assert results["worst_hit_p99_at_ingress_ms"] == pytest.approx(6.0)
    assert results["goals_met"] == {"hit_p99_at_ingress_ms": False}
    assert results["hit_path"]["hit-memory-text-c1"]["ingress_p99_ms"] == pytest.approx(2.0)
    assert "| hit-redis-image-c16 | 16 | 200.0 | 100% | 3.00 | 6.00 | 4.00 | 8.00 | 0 | " \
           "NOT met |" in markdown
    assert "| hit-memory-image-c1 | 1 | 300.0 | 100% | 1.00 | 2.00 | 4.00 | 8.00 | 0 | met |" \
           in markdown
    assert "| cache on (mean of both halves) | 28.00 | 0.500 | 1.000 | 45% | | |" in markdown
    del runs[hit_label("redis", "image", 16)]
    assert summarize(SimpleNamespace(runs=runs))[0]["goals_met"]["hit_p99_at_ingress_ms"]


def _pixels(b64: str) -> bytes:
    return Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB").tobytes()


def test_fresh_images_are_new_bytes_with_the_pool_images_pixels():
    workload = RepeatedEmbeddingWorkload(repeat_share=0.5, pool_size=2, image_size=64)
    rng = random.Random(0)
    inputs = [workload.next_request(rng).json["input"] for _ in range(400)]
    pool = {base64.b64encode(image).decode() for image in workload.pool}
    repeated = [x for x in inputs if x in pool]
    fresh = [x for x in inputs if x not in pool]
    assert 150 < len(repeated) < 250 and len(set(fresh)) == len(fresh)
    assert {_pixels(x) for x in fresh[:5]} <= {_pixels(x) for x in pool}
    again = [workload.next_request(random.Random(0)).json for _ in range(3)]
    assert again[0] == again[1] == again[2]
    with pytest.raises(ValueError):
        fresh_jpeg(b"\x89PNG", b"tag")


def test_repeats_of_one_input_and_fresh_texts():
    same = RepeatedEmbeddingWorkload(repeat_share=1.0, pool_size=1, media="text",
                                     route="text-embedding")
    rng = random.Random(1)
    specs = [same.next_request(rng) for _ in range(5)]
    assert len({s.json["input"] for s in specs}) == 1
    assert specs[0].json["model"] == "clip-vit-b-32" and specs[0].route == "text-embedding"
    fresh = build_workload("embedding-repeats", {"repeat_share": 0.0, "image_size": 32})
    assert fresh.route == "image-embedding-repeats" and fresh.model == "clip-vit-b-32-image"
    bodies = [fresh.next_request(rng).json["input"] for _ in range(20)]
    assert len(set(bodies)) == 20
