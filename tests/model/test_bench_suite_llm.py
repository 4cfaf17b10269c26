"""The LLM suite's arithmetic: served against offline per engine, the goals per row, prefix
caching off against on."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from bench.llm_offline import chats_of, text_settings
from bench.suites.llm import CLIENTS, ENGINES, F32, PREFIX_RUNS, chat_workload, summarize


def report(clients: int, tokens_per_s: float, ttft_p95: float, errors: int = 0,
           ttft_p50: float = 0.5) -> dict:
    return {"load": {"concurrency": clients},
            "metrics": {"overall": {
                "output_token_throughput": tokens_per_s,
                "prompt_tokens": 9200, "output_tokens": 2560,
                "requests": {"total": 40, "ok": 40 - errors, "errors": errors},
                "ttft": {"p50": ttft_p50, "p95": ttft_p95},
                "itl": {"p50": 0.05, "p95": 0.1},
                "goodput": {"requests_per_s": 1.5, "good": 30, "fraction": 0.75}}}}


def offline(tokens_per_s: float, batch: int = 16) -> dict:
    return {"engine": "x", "profile": "cpu", "dtype": "float32", "threads": 1, "batch": batch,
            "prompt_tokens": 3600, "output_tokens": 1024, "seconds": 1024 / tokens_per_s,
            "tokens_per_s": tokens_per_s}


def test_each_row_is_held_against_its_own_engines_offline_batch():
    runs = {f"{engine}-c{c}": report(c, 90.0, 1.0) for engine in ENGINES for c in CLIENTS}
    runs["vllm-c16"] = report(16, 300.0, 2.5, errors=2)
    runs[PREFIX_RUNS["on"]] = report(8, 50.0, 1.2, ttft_p50=0.4)
    runs[PREFIX_RUNS["off"]] = report(8, 45.0, 3.0, ttft_p50=1.0)
    measured = {"transformers-float32": offline(100.0), "transformers-bfloat16": offline(200.0),
                "vllm": offline(400.0)}
    at_8 = {"vllm": {8: offline(150.0, batch=8)}}
    results, markdown = summarize(SimpleNamespace(runs=runs), measured, at_8)
    chat = results["chat"]
    assert chat["transformers-float32-c8"]["served_vs_offline"] == pytest.approx(0.9)
    assert chat["transformers-float32-c8"]["goal_served_vs_offline_met"]
    assert chat["transformers-float32-c8"]["goal_ttft_p95_met"]
    assert chat["transformers-bfloat16-c16"]["served_vs_offline"] == pytest.approx(0.45)
    assert not chat["transformers-bfloat16-c16"]["goal_served_vs_offline_met"]
    vllm = chat["vllm-c16"]
    assert vllm["served_vs_offline"] == pytest.approx(0.75)
    assert not vllm["goal_ttft_p95_met"] and vllm["errors"] == 2
    assert vllm["goodput_requests_per_s"] == 1.5 and vllm["itl_p50"] == 0.05
    prefix = results["prefix_caching"]
    assert prefix["ttft_p50_off_vs_on"] == pytest.approx(2.5)
    assert prefix["ttft_p95_off_vs_on"] == pytest.approx(2.5)
    assert "| vllm | 16 | 300.0 | 0.50 | 2.50 | 0.050 | 2 | 1.50 | 75% | 400.0 | 0.75 | " \
           "NOT met | NOT met |" in markdown
    assert "p50 2.50, p95 2.50" in markdown
    # Against the same engine at the batch the clients can fill: 8 streams, a batch of 8
    assert chat["vllm-c8"]["served_vs_offline_same_batch"] == pytest.approx(0.6)
    assert vllm["served_vs_offline_same_batch"] == pytest.approx(0.75)  # 16: the reference
    assert chat["transformers-float32-c8"]["served_vs_offline_same_batch"] is None
    assert "| 400.0 | 0.75 |\n" in markdown and "| vllm (batch 8) | cpu |" in markdown


def test_chat_is_streamed_greedy_with_64_tokens():
    workload = chat_workload()
    body = workload.next_request(random.Random(0)).json
    assert body["max_tokens"] == 64 and body["temperature"] == 0.0
    assert body["stream"] and body["stream_options"] == {"include_usage": True}
    assert 190 <= len(body["messages"][0]["content"].split()) <= 210


def test_the_offline_reference_uses_the_profiles_engine_and_the_same_chats():
    assert text_settings("cpu-transformers", F32)["engine"]["dtype"] == "float32"
    assert text_settings("cpu-transformers")["engine"]["dtype"] == "auto"
    assert "py_executable" in text_settings("cpu")["resources"]["runtime_env"]
    chats = chats_of(chat_workload(), 3)
    assert chats == chats_of(chat_workload(), 3)
    assert [c["max_tokens"] for c in chats] == [64] * 3
    assert chats[0]["messages"] != chats[1]["messages"]
