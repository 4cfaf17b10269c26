"""The online latency model: it says it cannot predict before a batch, recovers latency(n) =
a + b*n from the batches it sees, answers for sizes never run, forgets old batches, and never
predicts a larger batch to be faster or a call to take negative time."""

from __future__ import annotations

import pytest

from deployments.replicas.latency_model import LatencyModel


def synthetic(size: int) -> float:
    return 0.1 + 0.05 * size


def taught(sizes: list[int], seconds=synthetic, forgetting: float = 0.95) -> LatencyModel:
    model = LatencyModel(forgetting)
    for size in sizes:
        model.observe(size, seconds(size))
    return model


def test_before_any_batch_it_cannot_predict():
    model = LatencyModel()
    assert not model.can_predict
    assert model.latency(4) is None and model.service_rate(4) is None


def test_it_learns_the_fixed_and_per_item_cost_and_prices_sizes_never_run():
    model = taught([1, 2, 4, 2, 1])
    assert model.coefficients() == pytest.approx((0.1, 0.05))
    assert model.latency(8) == pytest.approx(0.5)  # size 8 never ran
    assert model.service_rate(8) == pytest.approx(8 / 0.5)


def test_with_one_size_seen_it_predicts_that_latency_for_every_size():
    model = taught([4, 4, 4])
    assert model.latency(1) == pytest.approx(synthetic(4))
    assert model.latency(16) == pytest.approx(synthetic(4))


def test_it_forgets_old_batches_and_follows_the_new_latency():
    def slower(size: int) -> float:
        return 0.2 + 0.1 * size

    def after_a_change(forgetting: float) -> LatencyModel:
        model = taught([1, 2, 3, 4] * 15, forgetting=forgetting)
        for size in [1, 2, 3, 4] * 25:
            model.observe(size, slower(size))
        return model

    assert after_a_change(0.9).latency(6) == pytest.approx(slower(6), abs=1e-3)
    # Without forgetting the old batches still pull the prediction a long way down.
    assert after_a_change(1.0).latency(6) < slower(6) - 0.05


def test_a_larger_batch_is_never_predicted_faster():
    model = taught([1, 4, 1, 4], seconds=lambda size: 0.3 if size == 1 else 0.2)
    assert model.latency(4) >= model.latency(1) > 0


def test_a_call_is_never_predicted_to_take_negative_time():
    model = taught([2, 4, 2, 4], seconds=lambda size: 0.1 if size == 2 else 0.3)
    intercept, slope = model.coefficients()
    assert intercept == 0 and slope > 0  # the fit through the origin
    assert model.latency(1) > 0


def test_impossible_observations_and_settings_are_refused():
    with pytest.raises(ValueError):
        LatencyModel().observe(0, 0.1)
    with pytest.raises(ValueError):
        LatencyModel().observe(1, -0.1)
    with pytest.raises(ValueError):
        LatencyModel(forgetting=0.0)
