"""Queue policy "slo" on vLLM: the engine starts with priority scheduling and each request's
priority (lower first) follows its class, then its objective; under "fifo" every request keeps
priority 0; Neuron's vLLM stays in arrival order."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployments.core.config import TextEngineConfig
from deployments.core.fair_share import Share
from deployments.engines.neuron_text import neuron_engine_args
from deployments.engines.vllm_text import (
    CLASS_BAND,
    NO_OBJECTIVE_PRIORITY,
    VllmTextEngine,
    engine_args,
    vllm_priority,
)

BASE = 1_700_000_000.0


def test_priority_is_milliseconds_from_the_base_to_the_objective():
    assert vllm_priority(BASE + 1.5, BASE) == 1500
    assert vllm_priority(BASE + 0.0004, BASE) == 0
    assert vllm_priority(BASE + 2.0, BASE) < vllm_priority(BASE + 2.001, BASE)


def test_a_request_without_objective_comes_after_every_objective():
    far = vllm_priority(BASE + 10 * 365 * 86400, BASE)
    assert far < vllm_priority(None, BASE) == NO_OBJECTIVE_PRIORITY
    assert vllm_priority(float("nan"), BASE) == NO_OBJECTIVE_PRIORITY


def test_priorities_are_clamped_to_integers_vllm_can_carry():
    assert vllm_priority(BASE - 5, BASE) == 0
    assert vllm_priority(1e300, BASE) == NO_OBJECTIVE_PRIORITY - 1
    assert NO_OBJECTIVE_PRIORITY < 2**63  # vLLM's request message holds an int64
    assert all(isinstance(vllm_priority(o, BASE), int) for o in (None, BASE + 0.1234, 1e300))


def test_slo_starts_vllm_with_priority_scheduling_and_fifo_leaves_its_default():
    slo = engine_args(TextEngineConfig(name="vllm", queue_policy="slo"), "/m", "float32")
    assert slo["scheduling_policy"] == "priority"
    fifo = engine_args(TextEngineConfig(name="vllm"), "/m", "float32")
    assert "scheduling_policy" not in fifo


def test_engine_kwargs_scheduling_policy_wins():
    config = TextEngineConfig(name="vllm", queue_policy="slo",
                              engine_kwargs={"scheduling_policy": "fcfs"})
    assert engine_args(config, "/m", "float32")["scheduling_policy"] == "fcfs"


def test_neuron_never_gets_priority_scheduling():
    config = TextEngineConfig(name="neuron", queue_policy="slo",
                              engine_kwargs={"scheduling_policy": "priority"})
    assert "scheduling_policy" not in neuron_engine_args(config, "/m", "bfloat16")


def test_the_queue_policy_follows_the_app_unless_set_and_knows_only_fifo_and_slo():
    assert TextEngineConfig().queue_policy is None
    with pytest.raises(ValidationError, match="queue_policy"):
        TextEngineConfig(queue_policy="edf")


def test_every_batch_priority_comes_after_every_interactive_one():
    interactive = [vllm_priority(o, BASE) for o in (BASE - 5, BASE + 1.5, 1e300, None)]
    batch = [vllm_priority(o, BASE, "batch") for o in (BASE - 5, BASE + 1.5, 1e300, None)]
    assert max(interactive) < min(batch)
    assert batch == [CLASS_BAND + p for p in interactive]  # the objective's order within it
    assert max(batch) < 2**63


def engine_without_vllm(priority_scheduling: bool) -> VllmTextEngine:
    """A VllmTextEngine as __init__ leaves it for the queue order, with no vLLM behind it."""
    engine = VllmTextEngine.__new__(VllmTextEngine)
    engine.by_objective, engine.priority_base = priority_scheduling, BASE
    return engine


def test_under_priority_scheduling_a_request_gets_its_class_and_objective():
    engine = engine_without_vllm(priority_scheduling=True)
    assert engine._priority(BASE + 2.5, Share("batch", "nightly")) == CLASS_BAND + 2500
    assert engine._priority(BASE + 2.5, Share(tenant="team-a")) == 2500
    assert engine._priority(None, Share()) == NO_OBJECTIVE_PRIORITY


def test_under_fcfs_every_request_keeps_priority_zero():
    engine = engine_without_vllm(priority_scheduling=False)
    assert engine._priority(BASE + 2.5, Share("batch", "nightly")) == 0
