"""Per-row token sampling: each row of a batch keeps its own temperature, top_p and RNG."""

from __future__ import annotations

import random

import torch

from deployments.core.errors import InvalidRequest
from deployments.core.generation import SamplingParams

# The seeds torch.Generator.manual_seed takes (a negative one wraps modulo 2**64).
SEED_RANGE = range(-(2**63), 2**64)
# Below this a temperature is greedy decoding (as in vLLM): dividing logits by 1e-311 gives
# inf, and softmax of inf is NaN.
GREEDY_BELOW_TEMPERATURE = 1e-5


def make_generator(params: SamplingParams) -> torch.Generator:
    """A private RNG per request, so a seeded request decodes the same way in any batch.

    A seed torch rejects is a 400 for its own request, raised before any batch runs.
    """
    seed = params.seed if params.seed is not None else random.getrandbits(63)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed not in SEED_RANGE:
        raise InvalidRequest(f"seed must be an integer from {SEED_RANGE.start} to "
                             f"{SEED_RANGE.stop - 1}", "seed")
    return torch.Generator().manual_seed(seed)


def sample_row(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    """Next token id for one row of logits (shape [vocab])."""
    if params.temperature < GREEDY_BELOW_TEMPERATURE:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        probs = top_p_filter(probs, params.top_p)
    return int(torch.multinomial(probs, 1, generator=generator))


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_probs, order = torch.sort(probs, descending=True)
    cumulative = torch.cumsum(sorted_probs, dim=-1)
    # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
    drop = cumulative - sorted_probs >= top_p
    sorted_probs = sorted_probs.masked_fill(drop, 0.0)
    kept = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return kept / kept.sum()
