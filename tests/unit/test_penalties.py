"""Logit bias and OpenAI's presence and frequency penalties, as the amounts added to a row's
logits: OpenAI's formula, over what the row generated."""

from __future__ import annotations

from collections import Counter

import pytest

from deployments.core.errors import InvalidRequest
from deployments.core.generation import SamplingParams
from deployments.engines.penalties import check_logit_bias, logit_adjustments, penalized


def test_nothing_asked_changes_nothing():
    assert logit_adjustments(SamplingParams(), Counter({5: 3})) == {}
    assert not penalized(SamplingParams(logit_bias=((1, 2.0),)))


def test_openai_formula_per_generated_token():
    params = SamplingParams(presence_penalty=0.5, frequency_penalty=0.25)
    adjustments = logit_adjustments(params, Counter({7: 1, 9: 4}))
    # logit[j] - count[j] * frequency - (count[j] > 0) * presence
    assert adjustments == {7: -(1 * 0.25 + 0.5), 9: -(4 * 0.25 + 0.5)}
    assert penalized(params)


def test_negative_penalties_favour_what_was_said():
    adjustments = logit_adjustments(SamplingParams(frequency_penalty=-1.0), Counter({3: 2}))
    assert adjustments == {3: 2.0}


def test_tokens_never_generated_are_not_penalised():
    adjustments = logit_adjustments(SamplingParams(presence_penalty=1.0), Counter({4: 0}))
    assert adjustments == {}


def test_bias_and_penalty_add_up_on_one_token():
    params = SamplingParams(presence_penalty=1.0, logit_bias=((4, 10.0), (8, -100.0)))
    assert logit_adjustments(params, Counter({4: 2})) == {4: 9.0, 8: -100.0}


def test_bias_on_a_token_outside_the_vocabulary_is_a_400_naming_logit_bias():
    check_logit_bias(SamplingParams(logit_bias=((0, 1.0), (99, 1.0))), vocab_size=100)
    with pytest.raises(InvalidRequest, match="100") as raised:
        check_logit_bias(SamplingParams(logit_bias=((100, 1.0),)), vocab_size=100)
    assert raised.value.param == "logit_bias"
