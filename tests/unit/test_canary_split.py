import random

import pytest

from serve_app.canary_split import CANARY, MAIN, CanarySplit, Variant

MAIN_V, CANARY_V = Variant(MAIN, "v1", "main-handle"), Variant(CANARY, "v2", "canary-handle")


def share_to_canary(split: CanarySplit, calls: int) -> float:
    return sum(split.choose() is CANARY_V for _ in range(calls)) / calls


@pytest.mark.parametrize("weight", [0.05, 0.1, 0.5, 0.9])
def test_the_canary_takes_its_weight_of_many_calls(weight: float) -> None:
    split = CanarySplit(MAIN_V, CANARY_V, weight, random.Random(7).random)
    assert share_to_canary(split, 20_000) == pytest.approx(weight, abs=0.01)


def test_the_same_draws_give_the_same_split() -> None:
    def choices(seed: int) -> list[str]:
        split = CanarySplit(MAIN_V, CANARY_V, 0.3, random.Random(seed).random)
        return [split.choose().name for _ in range(200)]

    assert choices(1) == choices(1)
    assert set(choices(1)) == {MAIN, CANARY}


def test_a_draw_below_the_weight_goes_to_the_canary() -> None:
    draws = iter([0.0, 0.0999, 0.1, 0.99])
    split = CanarySplit(MAIN_V, CANARY_V, 0.1, lambda: next(draws))
    assert [split.choose().name for _ in range(4)] == [CANARY, CANARY, MAIN, MAIN]


def test_without_a_canary_every_call_goes_to_the_main_deployment() -> None:
    split = CanarySplit(MAIN_V, draw=lambda: 0.0)
    assert {split.choose().name for _ in range(100)} == {MAIN}


@pytest.mark.parametrize("weight", [0.0, 1.0, -0.1])
def test_a_canary_needs_a_weight_strictly_between_0_and_1(weight: float) -> None:
    with pytest.raises(ValueError, match="weight"):
        CanarySplit(MAIN_V, CANARY_V, weight)
