"""Which stage made a request miss: the one furthest past its median among the route's requests
that met the objective, from the Server-Timing the client recorded (the header up to a stream's
first token, the final event for the whole stream)."""

from __future__ import annotations

import pytest

from bench.http_client import _take_event
from bench.miss_attribution import blame, misses_by_stage, stage_times
from bench.objectives import Objectives, missed
from bench.records import RequestRecord
from bench.server_timing import first_token_timing, whole_timing
from bench.workloads.base import CHAT, PIPELINE, RequestSpec

EMBEDDINGS = "/v1/embeddings"
OBJECTIVES = Objectives({"/v1/pipeline": 2.0, "/v1/chat/completions": 2.0},
                        {EMBEDDINGS: 1.0, "/v1/pipeline": 10.0})


def header(**stages_ms: float) -> str:
    return ", ".join(f"{name.replace('_', '-')};dur={ms}" for name, ms in stages_ms.items())


def embedding(end: float, **stages_ms: float) -> RequestRecord:
    headers = {"Server-Timing": header(**stages_ms)} if stages_ms else {}
    return RequestRecord("image-embedding", 0.0, path=EMBEDDINGS, end=end, status=200,
                         headers=headers)


def pipeline(ttft: float, end: float, first: str, final: str | None) -> RequestRecord:
    return RequestRecord("pipeline", 0.0, path="/v1/pipeline", stream=True,
                         token_times=[ttft, end], end=end, status=200,
                         headers={"Server-Timing": first}, server_timing=final)


def attribute(records: list[RequestRecord]) -> dict[str, int]:
    return misses_by_stage(records, [missed(r, OBJECTIVES) for r in records])


def test_the_stage_furthest_past_its_usual_time_is_blamed_not_the_longest():
    met = [embedding(0.6, ingress=10, vision_queue=50, vision_model=500, total=560)
           for _ in range(3)]
    # The model is the longest stage, but only the queue ran past its usual time.
    queued = embedding(1.5, ingress=10, vision_queue=900, vision_model=520, total=1430)
    slow_model = embedding(1.2, ingress=10, vision_queue=60, vision_model=1100, total=1170)
    assert attribute([*met, queued, slow_model]) == {"vision-model": 1, "vision-queue": 1}


def test_time_the_server_did_not_see_is_blamed_on_outside_the_server():
    met = [embedding(0.6, ingress=10, vision_model=500, total=550) for _ in range(2)]
    late = embedding(1.5, ingress=10, vision_model=520, total=560)  # 0.94 s beyond the server
    assert attribute([*met, late]) == {"outside-server": 1}
    assert stage_times(late, "whole")["outside-server"] == pytest.approx(0.94)


def test_misses_without_timings_are_unknown_and_failures_are_errors():
    failed = RequestRecord("image-embedding", 0.0, path=EMBEDDINGS, end=0.1, status=503,
                           error="overloaded")
    assert attribute([embedding(0.5), embedding(1.5), failed]) == {"error": 1, "unknown": 1}


def test_with_no_request_within_the_objective_the_longest_stage_is_blamed():
    assert attribute([embedding(1.5, vision_queue=300, vision_model=1100, total=1450)]) == {
        "vision-model": 1}


def test_a_ttft_miss_is_judged_up_to_the_first_token_an_e2e_miss_on_the_whole_stream():
    first = header(ingress=5, audio_model=300, vision_model=200, text=400, total=800)
    final = header(ingress=5, audio_model=300, vision_model=200, text_first_token=350,
                   text_decode=4000, total=4800)
    met = [pipeline(0.8, 4.8, first, final) for _ in range(2)]
    slow_audio = pipeline(2.5, 10.6,
                          header(ingress=5, audio_model=2000, vision_model=200, text=400,
                                 total=2500),
                          header(ingress=5, audio_model=2000, vision_model=200,
                                 text_first_token=350, text_decode=8000, total=10500))
    long_decode = pipeline(0.8, 12.0, first,
                           header(ingress=5, audio_model=300, vision_model=200,
                                  text_first_token=350, text_decode=11000, total=11900))
    # The slow-audio stream's decode ran further past its median (4 s against the audio's
    # 1.7 s), but it missed its TTFT, which is judged on its header.
    assert attribute([*met, slow_audio, long_decode]) == {"audio-model": 1, "text-decode": 1}


def test_a_stream_without_its_final_timing_has_no_whole_stages():
    record = pipeline(0.5, 12.0, header(ingress=5, total=500), None)
    assert first_token_timing(record) == {"ingress": 0.005, "total": 0.5}
    assert whole_timing(record) is None
    assert attribute([record]) == {"unknown": 1}


def test_ties_go_to_the_first_stage_by_name():
    assert blame({"b": 2.0, "a": 2.0}, {}) == "a"


def test_the_client_keeps_a_streams_final_server_timing():
    chat = RequestRecord("chat", 0.0, stream=True)
    spec = RequestSpec("chat", "/v1/chat/completions", CHAT, stream=True)
    _take_event(spec, chat, {"choices": [{"delta": {}, "finish_reason": "stop"}],
                             "server_timing": "text-decode;dur=9.0, total;dur=10.0"}, 1.0)
    assert whole_timing(chat) == pytest.approx({"text-decode": 0.009, "total": 0.01})
    piped = RequestRecord("pipeline", 0.0, stream=True)
    spec = RequestSpec("pipeline", "/v1/pipeline", PIPELINE, stream=True)
    _take_event(spec, piped, {"type": "done", "timings": {"llm_s": 1.0},
                              "server_timing": "total;dur=2000"}, 1.0)
    assert whole_timing(piped) == {"total": 2.0} and piped.stages == {"llm_s": 1.0}
