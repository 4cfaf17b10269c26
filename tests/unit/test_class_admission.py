"""An ingress replica that is full turns batch away first: batch requests may fill only the part
of max_concurrent_requests that is not kept for interactive ones."""

from __future__ import annotations

import pytest

from deployments.core.config import load_config
from serve_app.class_admission import concurrency_cap


def test_interactive_requests_may_fill_the_replica():
    assert concurrency_cap(128, 0.25, "interactive") == 128


@pytest.mark.parametrize("reserve, cap", [(0.25, 96), (0.0, 128), (0.5, 64), (0.999, 1)])
def test_batch_requests_leave_the_reserve_free(reserve, cap):
    assert concurrency_cap(128, reserve, "batch") == cap


def test_the_reserve_is_a_quarter_by_default_and_never_all_of_it():
    assert load_config({}).ingress.interactive_reserve == 0.25
    with pytest.raises(ValueError, match="interactive_reserve"):
        load_config({"ingress": {"interactive_reserve": 1.0}})


def test_under_overload_the_batch_requests_are_the_ones_turned_away():
    """Admissions as the ingress makes them, one request at a time, none finishing."""
    in_flight, admitted, refused = 0, [], []
    for i in range(12):
        priority = "batch" if i % 2 else "interactive"
        if in_flight >= concurrency_cap(8, 0.25, priority):
            refused.append(priority)
            continue
        in_flight += 1
        admitted.append(priority)
    assert admitted.count("batch") == 3 and admitted.count("interactive") == 5
    assert refused == ["batch", "batch", "interactive", "batch"]  # batch, while room is kept
