"""An overload rate as a multiple of the capacity a sweep measured: its highest req/s."""

from __future__ import annotations

import json

import pytest

from bench.capacity import measured_capacity, rate_from_capacity


def sweep(*served: float) -> dict:
    return {"schema": "mmserve-bench/sweep/1", "name": "s",
            "points": [{"label": f"c{i}", "overall": {"request_throughput": x}}
                       for i, x in enumerate(served)]}


def test_the_capacity_is_the_most_any_level_served():
    assert measured_capacity(sweep(1.0, 3.5, 2.0)) == 3.5
    with pytest.raises(ValueError, match="no capacity"):
        measured_capacity(sweep())


def test_the_rate_is_a_multiple_of_the_capacity(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(sweep(2.0, 4.0)))
    assert rate_from_capacity(path, 1.5) == pytest.approx(6.0)
    path.write_text(json.dumps({"schema": "mmserve-bench/run/1"}))
    with pytest.raises(ValueError, match="not a sweep report"):
        rate_from_capacity(path, 1.5)
