"""A row's logit bias and OpenAI's presence and frequency penalties, as the amounts to add to
its logits before it samples its next token (plain Python; the torch side adds them in one
index_add: row_logits.py).

OpenAI's formula, over the tokens the row has generated so far (not its prompt, as in vLLM):
    logit[j] - count[j] * frequency_penalty - (count[j] > 0) * presence_penalty
"""

from __future__ import annotations

from collections.abc import Mapping

from deployments.core.errors import InvalidRequest
from deployments.core.generation import SamplingParams


def logit_adjustments(params: SamplingParams, counts: Mapping[int, int]) -> dict[int, float]:
    """Token id -> what to add to its logit: its bias, less its penalties; empty when
    nothing changes (`counts`: each generated token's occurrences so far)."""
    adjustments = dict(params.logit_bias)
    if params.presence_penalty or params.frequency_penalty:
        for token, count in counts.items():
            if count > 0:
                penalty = count * params.frequency_penalty + params.presence_penalty
                adjustments[token] = adjustments.get(token, 0.0) - penalty
    return adjustments


def penalized(params: SamplingParams) -> bool:
    """Whether the row's logits change with what it has generated."""
    return bool(params.presence_penalty or params.frequency_penalty)


def check_logit_bias(params: SamplingParams, vocab_size: int) -> None:
    """A 400 naming logit_bias when one of its token ids is not in the model's vocabulary."""
    unknown = sorted(token for token, _ in params.logit_bias
                     if not 0 <= token < vocab_size)
    if unknown:
        shown = ", ".join(str(token) for token in unknown[:5])
        raise InvalidRequest(f"logit_bias: token id {shown} is not in the model's vocabulary "
                             f"(ids 0 to {vocab_size - 1})", "logit_bias")
