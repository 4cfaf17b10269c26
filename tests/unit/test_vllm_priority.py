"""Queue policy "slo" on vLLM: the engine starts with priority scheduling and each request's
priority (lower first) follows its objective; Neuron's vLLM stays in arrival order."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployments.core.config import TextEngineConfig
from deployments.engines.neuron_text import neuron_engine_args
from deployments.engines.vllm_text import NO_OBJECTIVE_PRIORITY, engine_args, vllm_priority

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
