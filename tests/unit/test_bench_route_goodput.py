"""Goodput per route: each request judged by its own route's objective (the app's by default,
overridable), counted per route and over the run, and shown beside throughput and p95."""

from __future__ import annotations

import pytest

from bench.markdown import render
from bench.metrics import run_metrics
from bench.objectives import Objectives, missed, parse_objectives
from bench.records import RequestRecord
from bench.report import build_report
from deployments.core.config import Slo

CHAT, EMBEDDINGS, PIPELINE = "/v1/chat/completions", "/v1/embeddings", "/v1/pipeline"


def stream(route: str, path: str, start: float, ttft: float, end: float) -> RequestRecord:
    return RequestRecord(route, start, path=path, stream=True, token_times=[ttft, end],
                         end=end, status=200, output_tokens=2)


def whole(route: str, path: str, start: float, end: float, status: int = 200) -> RequestRecord:
    return RequestRecord(route, start, path=path, end=end, status=status,
                         error=None if status == 200 else "failed")


@pytest.fixture
def records() -> list[RequestRecord]:
    return [
        stream("chat", CHAT, 100.0, 0.5, 3.0),  # within both
        stream("chat", CHAT, 100.0, 2.5, 3.0),  # TTFT past 2 s
        stream("chat", CHAT, 101.0, 1.0, 31.0),  # e2e past 30 s
        stream("pipeline", PIPELINE, 100.0, 1.5, 9.0),
        whole("image-embedding", EMBEDDINGS, 100.0, 1.0),
        whole("image-embedding", EMBEDDINGS, 100.5, 2.5),  # past 2 s
        whole("image-embedding", EMBEDDINGS, 100.5, 0.1, status=503),
        whole("image-embedding", EMBEDDINGS, 99.0, 9.0),  # past 2 s; the warm-up in one test
    ]


def test_the_defaults_are_the_apps():
    defaults, slo = Objectives.app_defaults(), Slo()
    assert defaults.ttft_s == {CHAT: slo.chat.ttft_s, "/v1/completions": slo.chat.ttft_s,
                               "/v1/pipeline": slo.pipeline.ttft_s}
    assert defaults.e2e_s[CHAT] == defaults.e2e_s["/v1/completions"] == slo.chat.e2e_s
    assert defaults.e2e_s[EMBEDDINGS] == slo.embeddings.e2e_s
    assert defaults.e2e_s["/v1/audio/translations"] == slo.transcriptions.e2e_s


def test_a_stream_is_held_to_ttft_and_e2e_a_whole_answer_to_e2e():
    objectives = Objectives({CHAT: 2.0}, {CHAT: 30.0, EMBEDDINGS: 2.0})
    assert objectives.bounds(CHAT, stream=True) == {"ttft": 2.0, "e2e": 30.0}
    assert objectives.bounds(CHAT, stream=False) == {"e2e": 30.0}
    assert objectives.bounds("/v1/unlisted", stream=False) == {}
    assert missed(stream("chat", CHAT, 0.0, 2.5, 31.0), objectives) == ["ttft", "e2e"]
    assert missed(whole("e", EMBEDDINGS, 0.0, 0.1, status=500), objectives) == ["error"]
    assert missed(whole("e", EMBEDDINGS, 0.0, 1.9), objectives) == []


def test_overrides_replace_only_the_bounds_they_name():
    objectives = parse_objectives("ttft=500ms, embeddings=250ms, /v1/extra=1s")
    assert objectives.ttft_s[CHAT] == objectives.ttft_s["/v1/pipeline"] == 0.5
    assert objectives.e2e_s[EMBEDDINGS] == 0.25
    assert objectives.e2e_s["/v1/extra"] == 1.0
    assert objectives.e2e_s[CHAT] == Slo().chat.e2e_s
    one = parse_objectives("chat.ttft=1s")
    assert one.ttft_s[CHAT] == 1.0 and one.ttft_s["/v1/pipeline"] == Slo().pipeline.ttft_s
    for bad in ("tpot=1s", "chat.tpot=1s", "ttft.ttft=1s"):
        with pytest.raises(ValueError, match="bad route SLO"):
            parse_objectives(bad)


def test_goodput_per_route_and_over_the_run(records):
    records[-1].warmup = True
    m = run_metrics(records, {})
    chat, embeddings = m["routes"]["chat"]["route_slo"], m["routes"]["image-embedding"]["route_slo"]
    assert m["duration_s"] == pytest.approx(32.0)  # 100.0 to 101.0 + 31.0
    assert chat["objective"] == {"ttft": 2.0, "e2e": 30.0}
    assert (chat["total"], chat["good"], chat["missed"]) == (3, 1, 2)
    assert chat["fraction"] == pytest.approx(1 / 3)
    assert chat["requests_per_s"] == pytest.approx(1 / 32.0)
    assert embeddings["objective"] == {"e2e": 2.0}
    assert (embeddings["good"], embeddings["missed"]) == (1, 2)
    assert m["routes"]["pipeline"]["route_slo"]["fraction"] == 1.0
    overall = m["overall"]["route_slo"]
    assert (overall["total"], overall["good"], overall["missed"]) == (7, 3, 4)
    assert overall["requests_per_s"] == pytest.approx(3 / 32.0)
    assert overall["objective"] is None
    assert m["objectives"]["e2e_s"][EMBEDDINGS] == 2.0


def test_given_objectives_replace_the_apps(records):
    m = run_metrics(records, {}, parse_objectives("ttft=3s,chat=60s"))
    assert m["routes"]["chat"]["route_slo"]["good"] == 3


def test_the_markdown_sets_goodput_beside_throughput_and_p95(records):
    report = build_report(
        name="r", command="python -m bench run ...",
        environment={"host": "h", "cpu_count": 2, "uptime_before": "u", "uptime_after": "u"},
        target={"url": "http://app", "kind": "app", "profile": None}, workload={"name": "mixed"},
        load={"mode": "open", "concurrency": 0, "rate": 4.0, "burstiness": 1.0,
              "arrivals": "bursty", "burst_period_s": 60.0, "burst_s": 10.0,
              "burst_factor": 3.0, "burst_base_rate": 2.4, "duration_s": 60.0,
              "requests": None, "warmup_s": 5.0},
        clients={"actors": 1, "nodes": ["127.0.0.1"], "start_at": 100.0},
        metrics=run_metrics(records, {}),
        server={"available": False, "targets": [], "series": [], "summary": {}}, records=None)
    text = render(report)
    assert "bursts of 10 s at 3x every 60 s, 2.40 req/s between" in text
    assert "## Route SLOs" in text
    assert "| chat | ttft <= 2 s, e2e <= 30 s | 1 | 2 | 33.3 | 0.03 | 0.09 |" in text
    assert "| all routes | - | 3 | 5 | 37.5 |" in text
    assert "| image-embedding | error | 1 | 33.3% |" in text
