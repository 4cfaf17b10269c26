"""The bench's parsers and workloads: SLOs, length distributions, mixes, seeded requests,
word error rate, Prometheus text and the server-side series built from it."""

from __future__ import annotations

import random

import pytest

from bench.distributions import Distribution
from bench.prometheus import parse
from bench.server_view import mean_batch_sizes, replica_counts, summary, time_series
from bench.slo import parse_duration, parse_slo
from bench.speech import word_error_rate
from bench.workloads import build_workload
from bench.workloads.mixed import parse_mix


def test_slo_parsing_converts_units_to_seconds():
    assert parse_slo("ttft=500ms,e2e=5s,tpot=0.05,itl=2m,rtf=0.5") == {
        "ttft": 0.5, "e2e": 5.0, "tpot": 0.05, "itl": 120.0, "rtf": 0.5}
    assert parse_slo(None) == {} and parse_slo("") == {}
    assert parse_duration("0", allow_zero=True) == 0.0


@pytest.mark.parametrize("bad", ["ttft", "latency=5s", "e2e=fast", "e2e=-1s", "e2e=0"])
def test_bad_slos_are_refused_with_a_reason(bad):
    with pytest.raises(ValueError, match="bad"):
        parse_slo(bad)


def test_distributions_draw_in_range_and_reproducibly():
    rng = random.Random(0)
    assert Distribution.parse("64").sample(rng) == 64
    uniform = Distribution.parse("uniform:10,20")
    draws = [uniform.sample(rng) for _ in range(500)]
    assert min(draws) == 10 and max(draws) == 20
    assert all(Distribution.parse("normal:5,50").sample(rng) >= 1 for _ in range(200))
    assert {Distribution.parse("choice:8,16").sample(rng) for _ in range(100)} == {8, 16}
    lognormal = Distribution.parse("lognormal:64,0.5")
    median = sorted(lognormal.sample(rng) for _ in range(2001))[1000]
    assert 54 <= median <= 74
    first = [uniform.sample(random.Random(3)) for _ in range(5)]
    assert first == [uniform.sample(random.Random(3)) for _ in range(5)]


@pytest.mark.parametrize("bad", ["uniform:5", "normal:a,b", "uniform:9,1", "poisson:3"])
def test_bad_distributions_are_refused(bad):
    with pytest.raises(ValueError, match="bad distribution"):
        Distribution.parse(bad)


def test_mix_weights_and_unknown_routes():
    assert parse_mix("chat=3,pipeline=1") == {"chat": 3.0, "pipeline": 1.0}
    with pytest.raises(ValueError, match="unknown routes"):
        build_workload("mixed", {"mix": "chat=1,video=2"})
    with pytest.raises(ValueError, match="positive"):
        parse_mix("chat=0")


def test_mixed_workload_follows_its_weights_and_its_seed():
    workload = build_workload("mixed", {"mix": "chat=3,text-embedding=1"})
    routes = [workload.next_request(random.Random(i)).route for i in range(2000)]
    assert routes.count("chat") / len(routes) == pytest.approx(0.75, abs=0.04)
    a = [workload.next_request(random.Random(5)).json for _ in range(3)]
    assert a == [workload.next_request(random.Random(5)).json for _ in range(3)]


def test_chat_requests_follow_the_length_options():
    workload = build_workload("chat", {"prompt_len": "40", "output_len": "uniform:8,12",
                                       "stream": True})
    spec = workload.next_request(random.Random(0))
    assert spec.stream and spec.json["stream_options"] == {"include_usage": True}
    assert 8 <= spec.json["max_tokens"] <= 12
    assert len(spec.json["messages"][0]["content"].split()) == 40


def test_image_embedding_requests_carry_distinct_seeded_images():
    workload = build_workload("image-embedding", {"inputs_per_request": 4, "seed": 1})
    spec = workload.next_request(random.Random(0))
    assert spec.items == 4 and len(spec.json["input"]) == 4
    assert len(set(workload.pool)) == len(workload.pool)
    assert workload.pool == build_workload("image-embedding", {"seed": 1}).pool


def test_word_error_rate():
    assert word_error_rate("the quick brown fox", "The quick brown fox.") == 0.0
    assert word_error_rate("the quick brown fox", "the quick fox") == 0.25
    assert word_error_rate("open the door", "open a door please") == pytest.approx(2 / 3)


SCRAPE_1 = """\
# HELP ray_serve_replica_processing_queries The current number of queries being processed.
ray_serve_replica_processing_queries{app="mm",deployment="ImageEmbedder",replica="a"} 3.0
ray_serve_replica_processing_queries{app="mm",deployment="ImageEmbedder",replica="b"} 5.0
ray_serve_deployment_queued_queries{app="mm",deployment="ImageEmbedder",handle="h1"} 7.0
ray_serve_deployment_replica_healthy{app="mm",deployment="ImageEmbedder",replica="a"} 1.0
ray_mmserve_model_calls_total{deployment="ImageEmbedder",method="embed_image",replica="a"} 10.0
ray_mmserve_batch_items_total{deployment="ImageEmbedder",method="embed_image",replica="a"} 40.0
ray_mmserve_tokens_total{kind="prompt"} 5.0
"""
SCRAPE_2 = """\
ray_serve_replica_processing_queries{app="mm",deployment="ImageEmbedder",replica="a"} 1.0
ray_serve_replica_processing_queries{app="mm",deployment="ImageEmbedder",replica="b"} 0.0
ray_mmserve_model_calls_total{deployment="ImageEmbedder",method="embed_image",replica="a"} 14.0
ray_mmserve_batch_items_total{deployment="ImageEmbedder",method="embed_image",replica="a"} 72.0
ray_mmserve_model_calls_total{deployment="ImageEmbedder",method="embed_image",replica="b"} 2.0
ray_mmserve_batch_items_total{deployment="ImageEmbedder",method="embed_image",replica="b"} 16.0
"""


def test_prometheus_text_is_filtered_by_name_without_rays_prefix():
    samples = parse(SCRAPE_1, ("serve_deployment_queued_queries", "mmserve_model_calls_total"))
    assert [(s.name, s.value) for s in samples] == [
        ("serve_deployment_queued_queries", 7.0), ("mmserve_model_calls_total", 10.0)]
    assert samples[0].labels == {"app": "mm", "deployment": "ImageEmbedder",
                                 "handle": "h1"}


def test_server_series_from_two_scrapes():
    wanted = ("serve_replica_processing_queries", "serve_deployment_queued_queries",
              "serve_deployment_replica_healthy", "mmserve_model_calls_total",
              "mmserve_batch_items_total")
    scrapes = [(10.0, parse(SCRAPE_1, wanted)), (14.0, parse(SCRAPE_2, wanted))]
    # replica a: 4 calls served 32 requests; b appeared in between: 2 calls, 16 requests
    assert mean_batch_sizes(scrapes[0][1], scrapes[1][1]) == {
        "ImageEmbedder/embed_image": pytest.approx(48 / 6)}
    assert replica_counts(scrapes[0][1]) == {"ImageEmbedder": 2}
    points = time_series(scrapes, t0=9.0)
    assert points[0]["t"] == 1.0 and points[0]["ongoing"] == {"ImageEmbedder": 8.0}
    assert points[0]["queued"] == {"ImageEmbedder": 7.0}
    assert points[1]["healthy_replicas"] == {"ImageEmbedder": 1.0}  # held: Ray dropped it
    assert points[1]["model_calls_per_s"] == {"ImageEmbedder/embed_image": pytest.approx(1.5)}
    overall = summary(scrapes, points)
    assert overall["model_calls"] == {"ImageEmbedder/embed_image": 6.0}
    assert overall["ongoing_max"] == {"ImageEmbedder": 8.0}
    assert overall["replicas_max"] == {"ImageEmbedder": 2}


def test_a_run_is_dirty_when_code_changed_not_when_results_did(monkeypatch, tmp_path):
    import subprocess

    from bench import environment

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "r.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "c")
    monkeypatch.setattr(environment, "REPO", tmp_path)
    (tmp_path / "bench" / "results" / "r.json").write_text('{"new": 1}')
    assert not environment.git_commit().endswith("-dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert environment.git_commit().endswith("-dirty")
