"""Token logprobs in OpenAI's shape (ChatCompletionTokenLogprob): per completion token its
text, its UTF-8 bytes, its logprob and the `top_logprobs` most likely tokens at its place, with
theirs (plain Python: the engines hand in token ids and floats).

Which distribution the logprobs are of is the engines' (docs/openai-compatibility.md): the one
the token was sampled from, after logit bias, penalties, temperature and top_p, on both the
transformers scheduler (row_logits.py) and vLLM (logprobs_mode "processed_logprobs").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

# OpenAI's logprob for a token with no probability at all (JSON has no -Infinity); vLLM's
# server reports the same.
NO_PROBABILITY = -9999.0
_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")  # SentencePiece's raw-byte tokens
SENTENCEPIECE_SPACE = "\u2581"

TokenBytes = Callable[[int], bytes]


def reported(logprob: float) -> float:
    """A logprob as JSON can carry it: -inf (a token top_p left out) and NaN become
    NO_PROBABILITY."""
    if math.isnan(logprob) or logprob < NO_PROBABILITY:
        return NO_PROBABILITY
    return logprob


def most_likely(candidates: Iterable[tuple[int, float]], k: int) -> list[tuple[int, float]]:
    """The k (token, logprob) pairs of highest logprob, best first; ties by token id."""
    return sorted(candidates, key=lambda pair: (-pair[1], pair[0]))[:k]


def logprob_entry(token: int, logprob: float, top: Sequence[tuple[int, float]],
                  token_bytes: TokenBytes) -> dict[str, Any]:
    """One completion token's entry: {token, logprob, bytes, top_logprobs: [{token, logprob,
    bytes}]}."""
    return {**_described(token, logprob, token_bytes),
            "top_logprobs": [_described(t, lp, token_bytes) for t, lp in top]}


def _described(token: int, logprob: float, token_bytes: TokenBytes) -> dict[str, Any]:
    raw = token_bytes(token)
    return {"token": raw.decode("utf-8", errors="replace"), "logprob": reported(logprob),
            "bytes": list(raw)}


def released(ends: Sequence[int], sent: int, emitted_chars: int, finished: bool) -> int:
    """How many of a streamed row's token entries may go out with its text so far: those whose
    text (`ends[i]`: the text's length once token i was added) has all been sent, or every
    one once the row has finished. `sent` entries have gone out already."""
    if finished:
        return len(ends)
    while sent < len(ends) and ends[sent] <= emitted_chars:
        sent += 1
    return sent


class TokenBytesOf:
    """Each token id's exact bytes under a Hugging Face tokenizer: byte-level BPE pieces
    (GPT-2, Llama 3, SmolLM2) mapped back through their byte alphabet, SentencePiece's <0xNN>
    byte tokens and its word-start mark, special tokens as their text. A token that is part of
    a UTF-8 character has those bytes alone (its `token` text then shows U+FFFD)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.byte_level = _is_byte_level(tokenizer)
        self.special = set(getattr(tokenizer, "all_special_ids", ()))
        self.bytes_of = lru_cache(maxsize=1 << 16)(self._bytes_of)

    def __call__(self, token: int) -> bytes:
        return self.bytes_of(token)

    def _bytes_of(self, token: int) -> bytes:
        piece = self.tokenizer.convert_ids_to_tokens(token)
        if piece is None:
            return b""
        if token in self.special:
            return piece.encode()
        if self.byte_level and all(char in BYTE_DECODER for char in piece):
            return bytes(BYTE_DECODER[char] for char in piece)
        fallback = _BYTE_FALLBACK.match(piece)
        if fallback:
            return bytes([int(fallback.group(1), 16)])
        return piece.replace(SENTENCEPIECE_SPACE, " ").encode()


def _is_byte_level(tokenizer: Any) -> bool:
    if getattr(tokenizer, "byte_decoder", None) is not None:  # a slow GPT-2 tokenizer
        return True
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and "ByteLevel" in repr(backend.decoder)


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte alphabet reversed: each printable stand-in character -> its byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\xa1"), ord("\xac") + 1),
                 *range(ord("\xae"), ord("\xff") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


BYTE_DECODER = _byte_decoder()
