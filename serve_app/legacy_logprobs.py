"""A completion choice's `logprobs` in the legacy Completions shape, as OpenAI's /v1/completions
and vLLM's server answer it: `tokens` (each token's text), `token_logprobs`, `top_logprobs`
(per token, {text: logprob} of the `logprobs` most likely tokens and the chosen one, so up to
logprobs + 1 entries) and `text_offset` (where each token starts in the choice's text, in
characters).

It is made from the engines' chat-shaped entries (deployments/engines/token_logprobs.py), so
both routes report the same numbers. A streamed choice is shaped chunk by chunk by one
LegacyLogprobs, whose offsets run on across its chunks.
"""

from __future__ import annotations

import codecs
from typing import Any


class LegacyLogprobs:
    """One choice's tokens in the legacy shape, as they come; `top`: the request's
    `logprobs`."""

    def __init__(self, top: int) -> None:
        self.top = top
        self.chars = 0  # the text's length so far
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def shaped(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """The legacy object of these entries, the next of the choice's tokens."""
        shaped: dict[str, list] = {"tokens": [], "token_logprobs": [], "top_logprobs": [],
                                   "text_offset": []}
        for entry in entries:
            shaped["tokens"].append(entry["token"])
            shaped["token_logprobs"].append(entry["logprob"])
            shaped["top_logprobs"].append(self._top(entry))
            shaped["text_offset"].append(self.chars)
            # A token holding part of a character adds it once the character is whole: the
            # next token's offset is still where that character starts.
            self.chars += len(self._decoder.decode(bytes(entry["bytes"])))
        return shaped

    def _top(self, entry: dict[str, Any]) -> dict[str, float]:
        """The `top` most likely tokens, best first, then the chosen one if it is not among
        them; two tokens of the same text keep the likelier's logprob."""
        top: dict[str, float] = {}
        for other in [*entry["top_logprobs"][:self.top], entry]:
            top.setdefault(other["token"], other["logprob"])
        return top

