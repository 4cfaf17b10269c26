"""A constrained row's grammar as a mask on its own logits, inside the shared decode step.

Each row whose request asks for JSON (a schema, json_object, a forced tool call) holds a
RowGrammar: llguidance's matcher over the engine's tokenizer, compiled when the request is
admitted (a grammar that fails to compile is the request's InvalidRequest, before it takes a
place in any batch). At each step the scheduler masks that row's logits with the tokens the
grammar allows next, samples, and advances the grammar by the token; the rows beside it are
never touched, so an unconstrained row costs what it did. End-of-sequence is allowed only
where the grammar may end, and a row whose grammar can take nothing more ends at once.

The per-token mask is llguidance's bitmask (one bit per token id, 32 to a word), unpacked
onto the logits by `masked_logits`; `allowed_ids` reads the same bits in plain Python.
"""

from __future__ import annotations

import functools
from typing import Any

from deployments.core.errors import InvalidRequest
from deployments.core.json_grammar import grammar_of

WORD_BITS = 32


class RowGrammar:
    """One row's place in its grammar."""

    def __init__(self, matcher: Any) -> None:
        self.matcher = matcher

    def bitmask(self) -> bytes:
        """The tokens allowed next: bit i of little-endian 32-bit word i // 32 is token i.
        Only end-of-sequence once the grammar is complete (or has failed)."""
        return self.matcher.compute_bitmask()

    def copy(self) -> RowGrammar:
        """The same place in the grammar, advanced on its own from here (another choice)."""
        return RowGrammar(self.matcher.deep_copy())

    def accept(self, token: int) -> None:
        """Advances by a sampled token (one the mask allowed)."""
        self.matcher.consume_token(token)

    @property
    def complete(self) -> bool:
        """Nothing more may follow: the row ends here."""
        return self.matcher.is_stopped()

    @property
    def error(self) -> str:
        return self.matcher.get_error()


class GrammarCompiler:
    """The engine's tokenizer as llguidance sees it (built once: about 0.4 s for a 49k
    vocabulary), and each request's grammar compiled over it."""

    def __init__(self, ll_tokenizer: Any) -> None:
        self.ll_tokenizer = ll_tokenizer

    @classmethod
    def for_hf_tokenizer(cls, tokenizer: Any, vocab_size: int) -> GrammarCompiler:
        """Over a Hugging Face fast tokenizer; `vocab_size` is the model's logits width,
        which may be larger than the tokenizer's (those ids are never allowed)."""
        import llguidance.hf

        return cls(llguidance.hf.from_tokenizer(tokenizer, max(vocab_size, len(tokenizer))))

    def compile(self, schema: str) -> RowGrammar:
        """A fresh row grammar for a JSON Schema (JSON text); InvalidRequest if llguidance
        cannot build it."""
        from llguidance import LLMatcher

        matcher = LLMatcher(self.ll_tokenizer, grammar_of(schema), log_level=0)
        if matcher.is_error():
            raise InvalidRequest(f"the JSON Schema cannot be enforced: {matcher.get_error()}",
                                 "response_format")
        return RowGrammar(matcher)


def allowed_ids(bitmask: bytes, vocab_size: int) -> list[int]:
    """The token ids a bitmask allows, below `vocab_size`."""
    return [i for i in range(min(vocab_size, len(bitmask) * 8))
            if bitmask[i // 8] >> (i % 8) & 1]


def masked_logits(logits: Any, bitmask: bytes) -> Any:
    """The logits ([vocab]) with every token the bitmask does not allow at -inf: a new tensor,
    as the model's logits are inference tensors, which may not change in place."""
    import torch

    words = torch.frombuffer(bytearray(bitmask), dtype=torch.int32)
    allowed = ((words.unsqueeze(1) >> _shifts()) & 1).flatten().bool()
    width = logits.shape[-1]
    if allowed.shape[0] < width:  # ids past the grammar's vocabulary: never allowed
        allowed = torch.cat([allowed, allowed.new_zeros(width - allowed.shape[0])])
    return logits.masked_fill(~allowed[:width], float("-inf"))


@functools.cache
def _shifts() -> Any:
    import torch

    return torch.arange(WORD_BITS, dtype=torch.int32)
