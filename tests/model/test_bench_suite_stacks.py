"""The mixed suite: the app under fifo and under slo beside vLLM's server + a threadpool
server, per round and across rounds, the goals checked for each app stack; each route sent to
its server."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.client_actor import LoadClient
from bench.rounds import merge
from bench.suites.stacks import across_rounds, summarize


def report(clients: int, req_s: float, ttft_p95: float, chat_p95: float) -> dict:
    def dist(p95: float) -> dict:
        return {"p50": p95 / 2, "p95": p95}

    routes = {"chat": {"e2e": dist(chat_p95), "requests": {"errors": 0}},
              "transcription": {"e2e": dist(2.0), "requests": {"errors": 1}}}
    return {"load": {"concurrency": clients},
            "metrics": {"overall": {"request_throughput": req_s,
                                    "output_token_throughput": 10 * req_s,
                                    "ttft": dist(ttft_p95), "e2e": dist(chat_p95),
                                    "requests": {"errors": 1}},
                        "routes": routes}}


def one_round(app_req_s: float) -> SimpleNamespace:
    return SimpleNamespace(runs={
        "app-c16": report(16, app_req_s, 1.0, 3.0), "app-c1": report(1, 1.0, 0.2, 0.5),
        "app-slo-c16": report(16, 6.0, 0.5, 5.0), "app-slo-c1": report(1, 1.0, 0.2, 0.5),
        "peers-c16": report(16, 2.0, 2.0, 4.0), "peers-c1": report(1, 1.0, 0.2, 1.0)})


def test_each_round_sets_each_app_stack_beside_each_other_stack():
    results, markdown = summarize(one_round(4.0))
    assert results["vs"]["app"]["peers"]["throughput_c16"] == pytest.approx(2.0)
    assert results["vs"]["app"]["peers"]["ttft_p95_c16"] == pytest.approx(0.5)
    assert results["vs"]["app"]["peers"]["e2e_p50_c1"] == pytest.approx(0.5)
    assert results["vs"]["app-slo"]["peers"]["throughput_c16"] == pytest.approx(3.0)
    assert results["vs"]["app-slo"]["app"]["e2e_p95_c16"] == pytest.approx(5.0 / 3.0)
    assert results["runs"]["peers-c16"]["route_e2e_p95"] == {"chat": 4.0, "transcription": 2.0}
    assert "| e2e p95 s at 16 clients | app | app-slo | peers |" in markdown
    assert "| chat | 3.00 | 5.00 | 4.00 |" in markdown


def test_the_goals_are_checked_for_each_app_stack_against_the_peers():
    results, markdown = summarize(one_round(4.0))
    assert results["goals_met"]["app"]["throughput_at_least_1_5x_peers"] is True
    assert results["goals_met"]["app"]["route_e2e_p95_at_most_peers"]["chat"] is True
    assert results["goals_met"]["app-slo"]["throughput_at_least_1_5x_peers"] is True
    assert results["goals_met"]["app-slo"]["route_e2e_p95_at_most_peers"]["chat"] is False
    assert "| goal (app-slo against peers, 16 clients) | app-slo | peers | this round |" in (
        markdown)


def test_across_rounds_every_stack_shows_median_and_range_at_16_clients():
    merged = merge([summarize(one_round(r))[0] for r in (4.0, 3.0, 5.0)])
    text = across_rounds(merged, [1, 2, 3])
    assert "| metric | app | app-slo | peers |" in text
    assert "| req/s | 4 (3-5) | 6 (6-6) | 2 (2-2) |" in text
    assert "| TTFT p95 s | 1 (1-1) | 0.5 (0.5-0.5) | 2 (2-2) |" in text
    assert "| chat e2e p95 s | 3 (3-3) | 5 (5-5) | 4 (4-4) |" in text
    assert "| transcription e2e p95 s |" in text


def test_each_route_goes_to_the_server_that_serves_it():
    client = LoadClient("http://127.0.0.1:1/", None, 1.0,
                        {"/v1/chat/completions": "http://127.0.0.1:2/"})
    assert client.base_url("/v1/chat/completions") == "http://127.0.0.1:2"
    assert client.base_url("/v1/pipeline") == "http://127.0.0.1:1"
