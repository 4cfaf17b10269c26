"""Reports from records: the client's timing of a real streamed HTTP answer, the JSON, the
Markdown, the plots and the comparison of two runs."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

from bench.compare import compare, comparison_rows
from bench.http_client import send
from bench.markdown import render
from bench.metrics import run_metrics
from bench.plots import run_plots, sweep_curve
from bench.records import RequestRecord
from bench.report import build_report, load_report, write_json
from bench.sweep import best_under_slo
from bench.workloads.base import CHAT, EMBEDDING, RequestSpec

TOKENS = 5


async def _chat_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n')
    for i in range(TOKENS):
        await asyncio.sleep(0.01)
        chunk = {"choices": [{"delta": {"content": f"t{i} "}}]}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    usage = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": TOKENS}}
    await response.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
    return response


async def _broken_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n')
    await response.write(b'data: {"error":{"message":"boom"}}\n\ndata: [DONE]\n\n')
    return response


async def _overloaded(request: web.Request) -> web.Response:
    return web.json_response({"error": {"message": "overloaded"}}, status=503)


async def _embeddings(request: web.Request) -> web.Response:
    return web.json_response({"data": [{"embedding": [0.0]}]})


async def _send_all(specs: list[RequestSpec]) -> list[RequestRecord]:
    app = web.Application()
    app.router.add_post("/stream", _chat_stream)
    app.router.add_post("/broken", _broken_stream)
    app.router.add_post("/busy", _overloaded)
    app.router.add_post("/embed", _embeddings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            return [await send(session, f"http://127.0.0.1:{port}", spec, 10) for spec in specs]
    finally:
        await runner.cleanup()


def test_client_stamps_each_streamed_token_and_reads_usage():
    specs = [RequestSpec("chat", "/stream", CHAT, json={}, stream=True),
             RequestSpec("chat", "/broken", CHAT, json={}, stream=True),
             RequestSpec("chat", "/busy", CHAT, json={}),
             RequestSpec("image-embedding", "/embed", EMBEDDING, json={}, items=2)]
    good, broken, busy, short = asyncio.run(_send_all(specs))
    assert good.ok and good.status == 200
    assert len(good.token_times) == TOKENS  # the role-only first chunk is not a token
    assert good.token_times == sorted(good.token_times)
    assert 0 < good.first_byte <= good.ttft() < good.end
    assert len(good.itls()) == TOKENS - 1 and all(gap > 0 for gap in good.itls())
    assert (good.prompt_tokens, good.output_tokens) == (9, TOKENS)
    assert not broken.ok and "boom" in broken.error and broken.status == 200
    assert not busy.ok and busy.status == 503 and "overloaded" in busy.error
    assert not short.ok and "expected 2 embeddings" in short.error


def _records(scale: float) -> list[RequestRecord]:
    return [RequestRecord("chat", 100.0 + i, stream=True, end=1.0 * scale, status=200,
                          token_times=[0.1 * scale, 0.2 * scale, 0.3 * scale], output_tokens=3)
            for i in range(10)]


def _report(name: str, records: list[RequestRecord]) -> dict:
    return build_report(
        name=name, command="python -m bench run ...",
        environment={"host": "h", "cpu_count": 2, "uptime_before": "load average: 0.1",
                     "uptime_after": "load average: 0.2"},
        target={"url": "http://x", "kind": "app", "profile": "cpu"},
        workload={"name": "chat"},
        load={"mode": "closed", "concurrency": 4, "rate": None, "burstiness": 1.0,
              "duration_s": 10.0, "requests": None, "warmup_s": 1.0},
        clients={"actors": 1, "nodes": ["127.0.0.1"], "start_at": 100.0},
        metrics=run_metrics(records, {"e2e": 1.5}),
        server={"available": False, "targets": [], "series": [], "summary": {}},
        records=records)


def test_report_round_trips_and_renders(tmp_path):
    report = _report("fast", _records(1.0))
    path = write_json(report, tmp_path / "fast.json")
    loaded = load_report(path)
    assert loaded["schema"] == "mmserve-bench/run/1"
    assert loaded["metrics"]["overall"]["ttft"]["p50"] == pytest.approx(0.1)
    assert len(loaded["records"]) == 10
    text = render(loaded)
    assert "| TTFT | 100.0 |" in text and "goodput" in text
    made = run_plots(loaded, _records(1.0), tmp_path, "fast")
    assert made == ["fast-latency-cdf.png"]
    assert (tmp_path / "fast-latency-cdf.png").stat().st_size > 1000


def test_compare_prints_ratios_of_two_runs(tmp_path):
    write_json(_report("fast", _records(1.0)), tmp_path / "a.json")
    write_json(_report("slow", _records(2.0)), tmp_path / "b.json")
    rows = {row[0]: row for row in comparison_rows(
        load_report(tmp_path / "a.json")["metrics"]["overall"],
        load_report(tmp_path / "b.json")["metrics"]["overall"])}
    assert rows["ttft p50 (ms)"][1:] == ("100.00", "200.00", "2.00x  (A better)")
    assert rows["goodput (req/s)"][2] == "0.00"  # e2e 2 s misses the 1.5 s SLO
    text = compare(str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert "route chat" in text and "e2e p95 (ms)" in text


def test_sweep_picks_the_highest_throughput_that_meets_the_slo(tmp_path):
    def point(label, throughput, fraction):
        return {"label": label, "concurrency": 1, "rate": None, "overall": {
            "request_throughput": throughput, "e2e": {"p50": 0.1, "p95": 0.2, "p99": 0.3},
            "ttft": None, "goodput": {"fraction": fraction, "requests_per_s": throughput}}}

    points = [point("c1", 1.0, 1.0), point("c4", 3.0, 0.95), point("c16", 5.0, 0.5)]
    assert best_under_slo(points, 0.9)["label"] == "c4"
    assert best_under_slo(points, 0.99)["label"] == "c1"
    assert best_under_slo(points, 1.01) is None
    assert sweep_curve(points, tmp_path / "curve.png").exists()
