"""The capacity allocator (deployments/replicas/capacity_allocator.py) on synthetic loads, tick
by tick: the `cpu` profile's shape, three groups of 0.5-CPU replicas on a 2-CPU pool."""

from __future__ import annotations

import dataclasses
import math

import pytest

from deployments.replicas.capacity_allocator import (
    BUSY_SINCE,
    SLACK_SINCE,
    AllocatorSettings,
    GroupLoad,
    allocate,
    predicted_wait,
    replica_rate,
)

SETTINGS = AllocatorSettings(pool_cpus=2.0, upscale_delay_s=0.5, downscale_delay_s=30.0,
                             reclaim_delay_s=5.0)
IDLE = {"queued": 0.0, "running": 0.0}


def group(name: str, replicas: int = 1, low: int = 1, high: int = 2, objective_s: float = 10.0,
          rate: float | None = 1.0, **load: float) -> GroupLoad:
    return GroupLoad(name=name, target_replicas=replicas, running_replicas=replicas,
                     min_replicas=low, max_replicas=high, cpus_per_replica=0.5,
                     objective_s=objective_s, service_rate=rate, target_ongoing_requests=8,
                     **(IDLE | load))


def burst(requests: float) -> dict[str, float]:
    """A backlog: one batch running, the rest queued."""
    return {"queued": max(0.0, requests - 8), "running": min(requests, 8.0)}


class Cluster:
    """Serve's loop in miniature: each tick the allocator decides and every replica it asks
    for is running by the next tick."""

    def __init__(self, *groups: GroupLoad, settings: AllocatorSettings = SETTINGS,
                 tick_s: float = 0.5) -> None:
        self.groups = {g.name: g for g in groups}
        self.settings, self.tick_s, self.now, self.state = settings, tick_s, 1000.0, {}
        self.last = None

    def run(self, seconds: float, **loads: dict[str, float]) -> list[dict[str, int]]:
        """Replicas per group after each tick of `seconds` at steady loads (unnamed: idle)."""
        seen = []
        for _ in range(round(seconds / self.tick_s)):
            self.now += self.tick_s
            self.groups = {name: dataclasses.replace(g, **(IDLE | loads.get(name, {})))
                           for name, g in self.groups.items()}
            self.last = allocate(list(self.groups.values()), self.settings, self.now,
                                 self.state)
            self.state = self.last.state
            self.groups = {name: dataclasses.replace(
                g, target_replicas=self.last.decisions[name].replicas,
                running_replicas=self.last.decisions[name].replicas)
                for name, g in self.groups.items()}
            seen.append(self.replicas())
        return seen

    def replicas(self) -> dict[str, int]:
        return {name: g.target_replicas for name, g in self.groups.items()}

    def cpus(self) -> float:
        return sum(g.target_replicas * g.cpus_per_replica for g in self.groups.values())


def full_cpu_profile() -> Cluster:
    """After an image burst: vision holds its second replica, the pool's 2 CPUs all reserved."""
    return Cluster(group("text", high=1), group("vision", replicas=2),
                   group("audio", objective_s=15.0))


def test_predicted_wait_is_the_backlog_over_what_the_replicas_finish():
    assert predicted_wait(20, 2, 1.0) == 10.0
    assert predicted_wait(0, 0, 1.0) == 0.0
    assert predicted_wait(3, 0, 1.0) == math.inf  # work and no replica to do it


def test_without_a_measured_rate_a_replica_carries_its_target_in_the_waiting_budget():
    unknown = group("vision", rate=None, objective_s=2.0)
    assert replica_rate(unknown, SETTINGS) == 8 / (0.5 * 2.0)
    settings = dataclasses.replace(SETTINGS, upscale_delay_s=0)
    at_target = allocate([group("vision", rate=None, objective_s=2.0, **burst(8))], settings,
                         now=1.0).decisions["vision"]
    past_it = allocate([group("vision", rate=None, objective_s=2.0, **burst(9))], settings,
                       now=1.0).decisions["vision"]
    assert (at_target.replicas, at_target.rate_measured) == (1, False)
    assert past_it.replicas == 2  # queue per replica past target_ongoing_requests: busy


def test_a_speech_burst_with_vision_idle_moves_a_vision_replica_to_audio():
    cluster = full_cpu_profile()
    assert all(s == {"text": 1, "vision": 2, "audio": 1} for s in cluster.run(10))
    seen = cluster.run(1, audio=burst(30))  # 30 s of speech on one replica: objective 15 s
    assert seen == [{"text": 1, "vision": 2, "audio": 1}, {"text": 1, "vision": 1, "audio": 2}]
    audio, vision = cluster.last.decisions["audio"], cluster.last.decisions["vision"]
    assert (audio.action, vision.action) == ("took", "gave")
    assert "from vision" in audio.reason and "to audio" in vision.reason
    assert cluster.cpus() == SETTINGS.pool_cpus


def test_an_idle_period_returns_the_capacity_and_the_next_burst_gets_it():
    cluster = full_cpu_profile()
    cluster.run(10)
    cluster.run(5, audio=burst(30))
    assert cluster.replicas()["audio"] == 2
    seen = cluster.run(30.5)  # quiet: audio gives its second replica back after 30 s of slack
    assert {s["audio"] for s in seen[:-1]} == {2}  # 30 s from the first quiet tick, not before
    assert seen[-1] == {"text": 1, "vision": 1, "audio": 1}
    assert cluster.last.decisions["audio"].action == "down"
    assert "free CPUs" in cluster.last.decisions["audio"].reason
    cluster.run(1, vision=burst(40))  # images again: the freed CPUs, no one robbed
    assert cluster.replicas() == {"text": 1, "vision": 2, "audio": 1}
    assert cluster.last.decisions["vision"].action == "up"


def test_a_group_at_max_stays_and_its_lone_replica_gets_both_cores():
    cluster = Cluster(group("text", high=1), group("vision"),
                      group("audio", high=1, objective_s=15.0))
    seen = cluster.run(5, audio=burst(30))
    assert {s["audio"] for s in seen} == {1}
    audio = cluster.last.decisions["audio"]
    assert "at max 1" in audio.reason
    assert audio.threads == 2  # the only replica with work on a 2-CPU pool
    assert cluster.last.decisions["vision"].threads == 1


def test_no_group_is_taken_below_its_min():
    cluster = Cluster(group("text", replicas=2, low=2), group("vision"),
                      group("audio", objective_s=15.0))  # 2 CPUs reserved, none free
    seen = cluster.run(40, audio=burst(30))
    assert all(s == {"text": 2, "vision": 1, "audio": 1} for s in seen)
    assert "no group with slack" in cluster.last.decisions["audio"].reason


def test_scale_up_waits_its_delay_in_seconds_whatever_the_tick():
    for tick_s in (0.1, 0.5, 2.0):
        settings = dataclasses.replace(SETTINGS, upscale_delay_s=2.0)
        cluster = Cluster(group("vision"), settings=settings, tick_s=tick_s)
        seen = cluster.run(6, vision=burst(40))
        first_up = ([s["vision"] for s in seen].index(2) + 1) * tick_s
        assert 2.0 <= first_up <= 2.0 + tick_s, (tick_s, seen)


def test_a_dip_during_the_upscale_delay_starts_it_again():
    settings = dataclasses.replace(SETTINGS, upscale_delay_s=2.0)
    cluster = Cluster(group("vision"), settings=settings)
    assert cluster.run(1.5, vision=burst(40))[-1]["vision"] == 1
    cluster.run(0.5)
    assert {s["vision"] for s in cluster.run(2, vision=burst(40))} == {1}  # a new 2 s wait
    assert cluster.run(0.5, vision=burst(40))[-1]["vision"] == 2


def test_load_that_comes_and_goes_does_not_flap():
    cluster = full_cpu_profile()
    seen = []
    for _ in range(20):  # images every other second: vision is never slack for 30 s
        seen += cluster.run(1, vision=burst(20)) + cluster.run(1)
    assert {s["vision"] for s in seen} == {2}


def test_a_group_whose_new_replica_is_still_starting_gains_no_other():
    loads = [group("vision", **burst(40)), group("audio", objective_s=15.0)]
    loads[0] = dataclasses.replace(loads[0], target_replicas=2, running_replicas=1,
                                   max_replicas=4)
    state = {"vision": {BUSY_SINCE: 0.0}}
    decision = allocate(loads, SETTINGS, now=100.0, state=state).decisions["vision"]
    assert decision.replicas == 2 and "still starting" in decision.reason


def test_two_busy_groups_share_and_neither_robs_the_other():
    cluster = Cluster(group("text", high=1), group("vision", high=3),
                      group("audio", high=3, objective_s=15.0))
    # 0.5 CPU free: the busier group gains it; then the two hold what they have
    seen = cluster.run(20, vision=burst(40), audio=burst(30))
    assert seen[0] == {"text": 1, "vision": 1, "audio": 1}
    assert seen[1] == {"text": 1, "vision": 2, "audio": 1}  # 40 s of wait beats 30
    assert all(s == seen[1] for s in seen[1:])
    audio = cluster.last.decisions["audio"]
    assert audio.action == "hold" and "no group with slack" in audio.reason
    threads = {name: d.threads for name, d in cluster.last.decisions.items()}
    assert threads == {"text": 1, "vision": 1, "audio": 1}  # 3 working replicas, 2 CPUs


def test_the_threads_follow_the_groups_with_work():
    cluster = Cluster(group("text", high=1), group("vision"), group("audio", high=1))
    cluster.run(0.5, audio=burst(3))
    assert cluster.last.decisions["audio"].threads == 2
    cluster.run(0.5, audio=burst(3), text=burst(1))
    assert {d.threads for d in cluster.last.decisions.values()} == {1}


def test_counts_outside_min_and_max_return_at_once():
    settings = dataclasses.replace(SETTINGS, pool_cpus=4.0)
    decisions = allocate([group("vision", replicas=5, high=2), group("audio", replicas=0)],
                         settings, now=1.0).decisions
    assert (decisions["vision"].replicas, decisions["vision"].action) == (2, "bounds")
    assert (decisions["audio"].replicas, decisions["audio"].action) == (1, "bounds")
    assert "outside min..max" in decisions["vision"].reason


def test_every_decision_carries_its_reason_and_its_numbers():
    cluster = full_cpu_profile()
    cluster.run(10)
    cluster.run(1, audio=burst(30))
    for name, decision in cluster.last.decisions.items():
        assert decision.group == name and decision.reason.startswith(f"{name}: wait ")
    audio = cluster.last.decisions["audio"]
    assert audio.predicted_wait_s == 30.0 and audio.pressure == 30.0 / (0.5 * 15.0)
    assert audio.rate_measured
    assert "within its objective, holds" in cluster.last.decisions["text"].reason


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_the_same_loads_give_the_same_decisions_in_any_order(order):
    loads = [group("text", **burst(50)), group("vision", replicas=2),
             group("audio", **burst(50))]  # text and audio equally busy: a tie
    state = {name: {BUSY_SINCE: 0.0} for name in ("text", "vision", "audio")}
    decisions = allocate([loads[i] for i in order], SETTINGS, now=10.0,
                         state=state).decisions
    assert {n: d.replicas for n, d in decisions.items()} == {
        "text": 1, "vision": 2, "audio": 1}  # vision has been slack only since now
    later = allocate([loads[i] for i in order], SETTINGS, now=20.0,
                     state={**state, "vision": {SLACK_SINCE: 0.0}}).decisions
    # the tie goes by name, whatever the order the groups came in
    assert {n: d.replicas for n, d in later.items()} == {"text": 1, "vision": 1, "audio": 2}


def test_the_state_is_plain_floats_and_empty_for_a_quiet_group():
    cluster = full_cpu_profile()
    cluster.run(1, audio=burst(30))
    assert cluster.state["text"] == {}
    assert all(isinstance(v, float) for s in cluster.state.values() for v in s.values())
