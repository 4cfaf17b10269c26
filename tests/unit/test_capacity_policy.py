"""The capacity policy (deployments/replicas/capacity_policy.py): Serve's application-level
policy over the allocator, on synthetic AutoscalingContexts. No Ray: the contexts carry the
fields the policy reads, and Serve's default policy for other deployments is stubbed."""

from __future__ import annotations

import ast
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from deployments.replicas import capacity_policy
from deployments.replicas.capacity_allocator import SLACK_SINCE
from deployments.replicas.capacity_policy import SERVICE_RATE_METRIC, CapacityPolicy

ROOT = Path(__file__).resolve().parents[2]
GROUPS = {"TextGenerator": {"group": "text", "objective_s": 2, "cpus_per_replica": 0.5},
          "ImageEmbedder": {"group": "vision", "objective_s": 2, "cpus_per_replica": 0.5},
          "SpeechTranscriber": {"group": "audio", "objective_s": 15, "cpus_per_replica": 0.5}}
TEXT, VISION, AUDIO, INGRESS = (("TextGenerator", "mmserve"), ("ImageEmbedder", "mmserve"),
                                ("SpeechTranscriber", "mmserve"), ("Ingress", "mmserve"))


def context(deployment: tuple[str, str], replicas: int = 1, requests: float = 0.0,
            queued: float = 0.0, high: int = 2, now: float = 100.0, state: dict | None = None,
            rates: dict | None = None) -> SimpleNamespace:
    """The fields of Serve's AutoscalingContext that the policy reads."""
    return SimpleNamespace(
        deployment_name=deployment[0], target_num_replicas=replicas,
        current_num_replicas=replicas, capacity_adjusted_min_replicas=1,
        capacity_adjusted_max_replicas=high, total_num_requests=requests,
        total_queued_requests=queued, current_time=now, policy_state=state or {},
        aggregated_metrics={SERVICE_RATE_METRIC: rates} if rates else {},
        config=SimpleNamespace(target_ongoing_requests=8))


@pytest.fixture
def serve_default(monkeypatch):
    """Serve's default policy, stubbed: what it was asked and a fixed answer."""
    asked = []

    def stub(ctx):
        asked.append(ctx.deployment_name)
        return 3, {"serve": "state"}

    monkeypatch.setattr(capacity_policy, "serve_default_policy", stub)
    return asked


def policy() -> CapacityPolicy:
    return CapacityPolicy(pool_cpus=2, groups=GROUPS, upscale_delay_s=0.5,
                          downscale_delay_s=30, reclaim_delay_s=5)


def test_a_speech_burst_takes_the_replica_of_idle_vision_across_deployments(serve_default):
    slack_for_10_s = {SLACK_SINCE: 90.0, "serve_internal_counter": 2}
    contexts = {TEXT: context(TEXT), VISION: context(VISION, replicas=2,
                                                     state=slack_for_10_s),
                AUDIO: context(AUDIO, requests=30, queued=22, rates={"r1": 1.0}),
                INGRESS: context(INGRESS)}
    the_policy = policy()
    decisions, states = the_policy(contexts)
    assert decisions[AUDIO] == 1  # busy from now: the upscale delay first
    contexts[AUDIO].policy_state = states[AUDIO]
    contexts[VISION].policy_state = states[VISION]
    for ctx in contexts.values():
        ctx.current_time = 100.5
    decisions, states = the_policy(contexts)
    assert (decisions[TEXT], decisions[VISION], decisions[AUDIO]) == (1, 1, 2)
    assert decisions[INGRESS] == 3 and states[INGRESS] == {"serve": "state"}
    assert serve_default == ["Ingress", "Ingress"]  # never a group's deployment
    assert "serve_internal_counter" not in states[VISION]  # Serve merges its own keys back
    audio = the_policy.last.decisions["audio"]
    assert audio.action == "took" and audio.rate_measured and audio.predicted_wait_s == 30


def test_without_a_reported_rate_the_group_runs_on_its_target(serve_default):
    contexts = {VISION: context(VISION, requests=9), AUDIO: context(AUDIO)}
    state = {}
    the_policy = policy()
    for now in (100.0, 100.5):
        for dep, ctx in contexts.items():
            ctx.current_time, ctx.policy_state = now, state.get(dep, {})
        decisions, state = the_policy(contexts)
    assert decisions[VISION] == 2  # 9 requests on one replica: past its target of 8
    assert not the_policy.last.decisions["vision"].rate_measured


def test_the_mean_of_the_replicas_rates_is_the_groups():
    ctx = context(AUDIO, rates={"r1": 1.0, "r2": 3.0, "r3": 0.0})
    assert capacity_policy.service_rate(ctx) == 2.0  # a replica at 0 has not measured yet
    assert capacity_policy.service_rate(context(AUDIO)) is None


def test_a_decision_is_logged_when_it_changes_not_every_tick(serve_default, caplog):
    the_policy = policy()
    contexts = {VISION: context(VISION), AUDIO: context(AUDIO, requests=30, rates={"r": 1.0},
                                                        high=1)}
    with caplog.at_level(logging.INFO, logger="ray.serve"):
        for tick in range(10):
            for ctx in contexts.values():
                ctx.current_time = 100 + tick * 0.5
            the_policy(contexts)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("capacity:")]
    assert len(lines) == 2  # one per group: audio busy at max, vision holding
    audio = next(line for line in lines if "audio:" in line)
    assert "at max 1" in audio and "1 replicas x 2 threads" in audio


def test_the_modules_serve_pickles_import_only_the_stdlib_and_the_allocator():
    """Serve's controller cannot import this checkout: the allocator travels by value with the
    policy, and neither may need anything else from the project at import."""
    allowed_project = {"deployments.replicas", "deployments.replicas.capacity_allocator"}
    for name in ("capacity_allocator", "capacity_policy"):
        tree = ast.parse((ROOT / "deployments" / "replicas" / f"{name}.py").read_text())
        top_level = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
        modules = {alias.name for node in top_level if isinstance(node, ast.Import)
                   for alias in node.names}
        modules |= {node.module for node in top_level if isinstance(node, ast.ImportFrom)}
        foreign = {m for m in modules if m not in allowed_project
                   and m.split(".")[0] not in sys.stdlib_module_names}
        assert not foreign, (name, foreign)


def tick(the_policy: CapacityPolicy, contexts: dict, now: float) -> dict:
    """One control-loop tick at `now`; the states it returns are the next tick's."""
    for ctx in contexts.values():
        ctx.current_time = now
    decisions, states = the_policy(contexts)
    for dep, ctx in contexts.items():
        ctx.policy_state = states[dep]
    return decisions


def test_a_pool_left_unset_is_the_clusters_cpus_less_the_ingress_read_every_30_s(
        serve_default, monkeypatch):
    reads = iter([2.5, 4.0])
    asked = []
    monkeypatch.setattr(capacity_policy, "cluster_cpus",
                        lambda: asked.append(1) or next(reads))
    the_policy = CapacityPolicy(pool_cpus=None, groups=GROUPS, reserved_cpus=0.5)
    contexts = {VISION: context(VISION), AUDIO: context(AUDIO)}
    tick(the_policy, contexts, 100.0)
    assert the_policy.settings.pool_cpus == 2.0
    tick(the_policy, contexts, 100.0 + capacity_policy.POOL_REFRESH_S - 1)
    assert len(asked) == 1 and the_policy.settings.pool_cpus == 2.0
    tick(the_policy, contexts, 100.0 + capacity_policy.POOL_REFRESH_S)
    assert len(asked) == 2 and the_policy.settings.pool_cpus == 3.5


def test_until_the_cluster_answers_the_pool_is_what_the_groups_hold(serve_default,
                                                                     monkeypatch):
    monkeypatch.setattr(capacity_policy, "cluster_cpus", lambda: None)
    the_policy = CapacityPolicy(pool_cpus=None, groups=GROUPS)
    contexts = {VISION: context(VISION, requests=40), AUDIO: context(AUDIO, replicas=2)}
    for now in (100.0, 101.0):
        decisions = tick(the_policy, contexts, now)
    assert the_policy.settings.pool_cpus == 1.5  # 1 vision + 2 audio at 0.5
    assert decisions[VISION] == 1  # busy, but no free CPU and audio has no slack yet
    assert "0 CPUs free" in the_policy.last.decisions["vision"].reason


class _Metric:
    def __init__(self, kind: str, name: str, description: str, tag_keys: tuple) -> None:
        self.kind, self.name, self.tag_keys, self.values = kind, name, tag_keys, []

    def set(self, value: float, tags: dict) -> None:
        self.values.append((value, tags))

    def inc(self, value: float, tags: dict) -> None:
        self.values.append((value, tags))


def test_with_metrics_each_decision_is_exported_with_its_group_and_application(
        serve_default, monkeypatch):
    made: dict[str, _Metric] = {}

    def make(kind, name, description, tag_keys):
        made[name] = _Metric(kind, name, description, tag_keys)
        return made[name]

    monkeypatch.setattr(capacity_policy, "ray_metric", make)
    the_policy = CapacityPolicy(pool_cpus=2, groups=GROUPS, metrics=True, upscale_delay_s=0)
    contexts = {VISION: context(VISION, requests=40), AUDIO: context(AUDIO, rates={"r": 1.0})}
    for ctx in contexts.values():
        ctx.app_name = "mmserve"
    tick(the_policy, contexts, 100.0)
    replicas = dict((tags["group"], value)
                    for value, tags in made["mmserve_capacity_replicas"].values)
    assert replicas == {"vision": 2.0, "audio": 1.0}
    assert made["mmserve_capacity_rate_measured"].values[0] == (
        1.0, {"application": "mmserve", "group": "audio"})
    assert made["mmserve_capacity_moves"].values == [
        (1, {"application": "mmserve", "group": "vision", "action": "up"})]
    assert made["mmserve_capacity_moves"].kind == "counter"
    assert all(metric.kind == "gauge" for name, metric in made.items()
               if name != "mmserve_capacity_moves")
