"""The n choices of one request gathered into its one outcome; each choice's seed."""

from __future__ import annotations

from deployments.core.errors import DeadlineExceeded
from deployments.core.generation import Completion
from deployments.engines.choice_fork import ChoiceGroup, choice_seed


def choice(text: str, tokens: int = 2) -> Completion:
    return Completion(text, 5, tokens, "stop")


def test_the_outcome_comes_once_every_choice_has_finished_in_index_order():
    outcomes: list = []
    group = ChoiceGroup(3, outcomes.append)
    group.finisher(2)(choice("c", 4))
    group.finisher(0)(choice("a", 1))
    assert outcomes == []
    group.finisher(1)(choice("b", 2))
    [first] = outcomes
    assert [c.text for c in first.choices] == ["a", "b", "c"]
    assert first.all_completion_tokens == 7 and first.completion_tokens == 1


def test_the_first_error_is_the_outcome_at_once_and_later_ones_are_ignored():
    outcomes: list = []
    group = ChoiceGroup(3, outcomes.append)
    group.finisher(0)(choice("a"))
    late = DeadlineExceeded("the completion")
    group.finisher(1)(late)
    group.finisher(2)(choice("c"))
    group.finisher(1)(DeadlineExceeded("again"))
    assert outcomes == [late]


def test_one_choice_is_its_own_outcome():
    outcomes: list = []
    ChoiceGroup(1, outcomes.append).finisher(0)(choice("only"))
    assert [c.text for c in outcomes[0].choices] == ["only"]


def test_each_choice_is_seeded_as_vllm_seeds_its_children():
    assert [choice_seed(41, i) for i in range(3)] == [41, 42, 43]
    assert choice_seed(None, 2) is None
