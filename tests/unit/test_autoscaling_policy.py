"""The queue autoscaling policy (deployments/replicas/autoscaling_policy.py), tick by tick on
synthetic contexts; then the way Serve takes it: from the config, and pickled for a controller
that cannot import this checkout. No Ray cluster."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from deployments.core.config import load_config
from deployments.replicas.autoscaling_policy import QueuePolicy, decide, replicas_for
from deployments.replicas.serve_options import QUEUE_POLICY, deployment_options

TARGET = 16  # target_ongoing_requests of the cpu profile's vision group


def context(load: float, target_replicas: int, now: float, state: dict | None = None,
            low: int = 1, high: int = 2) -> SimpleNamespace:
    """The fields of Serve's AutoscalingContext that the policy reads."""
    return SimpleNamespace(
        total_num_requests=load, target_num_replicas=target_replicas,
        current_num_replicas=target_replicas, capacity_adjusted_min_replicas=low,
        capacity_adjusted_max_replicas=high, current_time=now, policy_state=state or {},
        config=SimpleNamespace(target_ongoing_requests=TARGET))


class Controller:
    """Serve's loop in miniature: calls the policy each tick, keeps its state and target."""

    def __init__(self, policy: QueuePolicy, replicas: int = 1, low: int = 1, high: int = 2,
                 tick_s: float = 0.5) -> None:
        self.policy, self.replicas, self.low, self.high = policy, replicas, low, high
        self.tick_s, self.now, self.state = tick_s, 1000.0, {}

    def run(self, load: float, seconds: float) -> list[int]:
        """Target replica count after each tick of `seconds` at a steady `load`."""
        seen = []
        for _ in range(round(seconds / self.tick_s)):
            self.now += self.tick_s
            self.replicas, self.state = self.policy(
                context(load, self.replicas, self.now, self.state, self.low, self.high))
            seen.append(self.replicas)
        return seen


@pytest.mark.parametrize(("load", "replicas"), [
    (0, 0), (1, 1), (16, 1), (16.5, 2), (32, 2), (32.000000001, 2), (33, 3), (160, 10)])
def test_replicas_carry_the_load_at_the_target_each(load, replicas):
    assert replicas_for(load, TARGET) == replicas


def test_a_queue_scales_up_at_the_first_tick_without_an_upscale_delay():
    assert Controller(QueuePolicy(upscale_delay_s=0)).run(load=40, seconds=0.5) == [2]


def test_scale_up_waits_its_delay_in_seconds_whatever_the_tick():
    for tick_s in (0.1, 0.5, 2.0):
        controller = Controller(QueuePolicy(upscale_delay_s=2), tick_s=tick_s)
        seen = controller.run(load=40, seconds=6)
        first_up = (seen.index(2) + 1) * tick_s
        assert 2.0 <= first_up <= 2.0 + tick_s, (tick_s, seen)


def test_a_dip_during_the_upscale_delay_starts_it_again():
    controller = Controller(QueuePolicy(upscale_delay_s=2))
    assert controller.run(load=40, seconds=1.5) == [1, 1, 1]
    assert controller.run(load=4, seconds=0.5) == [1]
    assert controller.run(load=40, seconds=2) == [1, 1, 1, 1]  # a new 2 s wait from here
    assert controller.run(load=40, seconds=0.5) == [2]


def test_steady_load_holds_the_count():
    controller = Controller(QueuePolicy(upscale_delay_s=0, downscale_delay_s=5), replicas=2)
    assert set(controller.run(load=24, seconds=60)) == {2}


def test_scale_down_only_after_the_load_stayed_low_for_the_downscale_delay():
    controller = Controller(QueuePolicy(downscale_delay_s=5), replicas=2)
    seen = controller.run(load=3, seconds=8)
    assert seen[:10] == [2] * 10 and seen[10:] == [1] * 6  # down 5 s after the first low tick


def test_a_burst_during_the_downscale_delay_starts_it_again():
    controller = Controller(QueuePolicy(downscale_delay_s=5), replicas=2)
    assert set(controller.run(load=3, seconds=4)) == {2}
    assert controller.run(load=30, seconds=0.5) == [2]
    assert set(controller.run(load=3, seconds=5)) == {2}
    assert controller.run(load=3, seconds=0.5) == [1]


def test_scale_down_goes_to_the_most_wanted_during_the_delay_not_the_last_tick():
    controller = Controller(QueuePolicy(downscale_delay_s=5), replicas=4, high=4)
    controller.run(load=40, seconds=1)  # 3 wanted
    assert set(controller.run(load=0, seconds=4)) == {4}
    assert controller.run(load=0, seconds=0.5) == [3]  # not 1: 3 were wanted 4 s ago


def test_load_around_a_boundary_does_not_flap():
    controller = Controller(QueuePolicy(upscale_delay_s=2, downscale_delay_s=30))
    seen = []
    for _ in range(20):  # above and below one replica's worth, every other second
        seen += controller.run(load=20, seconds=1) + controller.run(load=12, seconds=1)
    assert set(seen) == {1}
    controller.replicas = 2  # the same load at two replicas stays at two
    seen = []
    for _ in range(20):
        seen += controller.run(load=20, seconds=1) + controller.run(load=12, seconds=1)
    assert set(seen) == {2}


def test_the_count_stays_within_min_and_max():
    assert set(Controller(QueuePolicy(), high=2).run(load=1000, seconds=5)) == {2}
    assert set(Controller(QueuePolicy(downscale_delay_s=0), replicas=2, low=2, high=4)
               .run(load=0, seconds=5)) == {2}


def test_bounds_that_moved_apply_at_once():
    # a lowered max_replicas (or target_capacity) is not a decision to wait for
    assert Controller(QueuePolicy(downscale_delay_s=60), replicas=4, high=2).run(
        load=100, seconds=0.5) == [2]
    assert Controller(QueuePolicy(upscale_delay_s=60), replicas=1, low=2, high=4).run(
        load=0, seconds=0.5) == [2]


def test_state_of_others_is_kept_and_ours_cleared_when_holding():
    replicas, state = decide(load=40, target_replicas=1, min_replicas=1, max_replicas=2,
                             target_ongoing_requests=TARGET, upscale_delay_s=5,
                             downscale_delay_s=5, now=10.0, state={"serve_key": 7})
    assert replicas == 1 and state["serve_key"] == 7 and len(state) == 2
    replicas, state = decide(load=10, target_replicas=1, min_replicas=1, max_replicas=2,
                             target_ongoing_requests=TARGET, upscale_delay_s=5,
                             downscale_delay_s=5, now=11.0, state=state)
    assert (replicas, state) == (1, {"serve_key": 7})


def test_queue_policy_in_the_config_becomes_serves_custom_policy():
    config = load_config({"vision": {"autoscaling": {
        "policy": "queue", "min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 16,
        "upscale_delay_s": 2, "downscale_delay_s": 30, "metrics_interval_s": 1,
        "look_back_period_s": 3}}})
    autoscaling = deployment_options(config.vision, "ImageEmbedder")["autoscaling_config"]
    assert autoscaling["policy"] == {"policy_function": QUEUE_POLICY, "policy_kwargs": {
        "upscale_delay_s": 2, "downscale_delay_s": 30}}
    # Serve applies its own delays to a custom policy's answer as well: they must not add up
    assert autoscaling["upscale_delay_s"] == autoscaling["downscale_delay_s"] == 0
    assert (autoscaling["metrics_interval_s"], autoscaling["look_back_period_s"]) == (1, 3)
    default = load_config({"vision": {"autoscaling": {"max_replicas": 2}}})
    assert "policy" not in deployment_options(default.vision, "ImageEmbedder")["autoscaling_config"]


def test_a_look_back_window_shorter_than_the_report_interval_is_refused():
    from deployments.core.config import ConfigError

    with pytest.raises(ConfigError, match=r"vision\.autoscaling"):
        load_config({"vision": {"autoscaling": {"metrics_interval_s": 2,
                                                "look_back_period_s": 1}}})
