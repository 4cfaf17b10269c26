"""The forward passes of a causal LM: one request's prefill (reusing a cached prefix), and one
decode step of every running row together."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from deployments.engines.kv_batch import KVBatch, kv_layers
from deployments.engines.prefix_cache import PrefixCache


class ModelRunner:
    def __init__(self, model: torch.nn.Module, prefix_cache: PrefixCache | None) -> None:
        self.model = model
        self.prefix_cache = prefix_cache

    @torch.inference_mode()
    def prefill(self, prompt: list[int]) -> tuple[DynamicCache, torch.Tensor, int]:
        """(the prompt's KV, the last position's logits, prompt tokens found in the prefix
        cache), computing only what the cache lacks. The model projects the last position
        alone onto the vocabulary: the others' logits (2,048 positions x 49,152 tokens, 400 MB
        in float32) would be thrown away."""
        cached, layers = self.prefix_cache.lookup(prompt) if self.prefix_cache else (0, None)
        cache = DynamicCache(ddp_cache_data=layers) if layers else DynamicCache()
        ids = torch.tensor([prompt[cached:]], dtype=torch.long)
        positions = torch.arange(cached, len(prompt)).unsqueeze(0)
        out = self.model(input_ids=ids, attention_mask=torch.ones((1, len(prompt)),
                                                                  dtype=torch.long),
                         position_ids=positions, past_key_values=cache, use_cache=True,
                         logits_to_keep=1)
        if self.prefix_cache:
            self.prefix_cache.store(prompt, kv_layers(cache))
        return cache, out.logits[0, -1], cached

    @torch.inference_mode()
    def decode(self, batch: KVBatch, last_tokens: list[int]) -> torch.Tensor:
        """Logits [rows, vocab] of the next token of every row of `batch`, whose cache it
        extends by the step."""
        mask, positions = batch.step_inputs()
        ids = torch.tensor(last_tokens, dtype=torch.long).unsqueeze(1)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         past_key_values=batch.cache, use_cache=True)
        batch.stepped(mask)
        return out.logits[:, -1]
