"""CPU seconds per process between two /proc snapshots."""

from __future__ import annotations

from bench.cpu_accounting import usage


def test_cpu_usage_follows_a_process_that_retitled_itself():
    before = {("7", "ray::Worker.first_task"): 10.0, ("8", "python"): 1.0}
    after = {("7", "ray::Worker.second_task"): 14.0, ("8", "python"): 1.5}
    cpu = usage(before, after, (0.0, 0.0), (4.5, 10.0))
    assert cpu["cpu_seconds_by_process"] == {"ray::Worker": 4.0, "python": 0.5}
    assert cpu["machine_busy_fraction"] == 0.45
