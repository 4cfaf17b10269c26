"""What the scheduler does to one row's logits around sampling: before, its logit bias and
penalties (penalties.py) are added; after, the logprobs of the token it sampled are read from
the distribution it was sampled from (token_logprobs.py gives them OpenAI's shape)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from deployments.core.generation import SamplingParams
from deployments.engines.penalties import logit_adjustments
from deployments.engines.sampling import GREEDY_BELOW_TEMPERATURE, top_p_filter
from deployments.engines.token_logprobs import TokenBytes, logprob_entry


def adjusted(logits: torch.Tensor, params: SamplingParams,
             counts: Mapping[int, int]) -> torch.Tensor:
    """The row's logits with its bias and penalties added (a copy: forked choices share one
    prefill's logits); the same tensor when neither applies."""
    adjustments = logit_adjustments(params, counts)
    if not adjustments:
        return logits
    ids = torch.tensor(list(adjustments), dtype=torch.long)
    amounts = torch.tensor(list(adjustments.values()), dtype=torch.float32)
    return logits.float().index_add(0, ids, amounts)


def sampled_logprobs(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Log-probabilities [vocab] of the distribution sample_row draws from: the logits scaled
    by the temperature, top_p applied (left-out tokens: -inf); greedy rows (temperature 0)
    at temperature 1, as vLLM reports its processed logprobs for them."""
    logits = logits.float()
    if params.temperature < GREEDY_BELOW_TEMPERATURE:
        return torch.log_softmax(logits, dim=-1)
    logprobs = torch.log_softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        logprobs = torch.log(top_p_filter(logprobs.exp(), params.top_p))
    return logprobs


def token_logprob(logits: torch.Tensor, params: SamplingParams, token: int,
                  token_bytes: TokenBytes) -> dict:
    """The sampled token's entry: its logprob and the row's top_logprobs most likely tokens."""
    logprobs = sampled_logprobs(logits, params)
    top: list[tuple[int, float]] = []
    if params.top_logprobs:
        values, ids = torch.topk(logprobs, params.top_logprobs)
        top = list(zip(ids.tolist(), values.tolist(), strict=True))
    return logprob_entry(token, float(logprobs[token]), top, token_bytes)
