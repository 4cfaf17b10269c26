"""Token logprobs in OpenAI's shape, checked against the openai package's own type; a token's
exact bytes under byte-level and SentencePiece tokenizers; which entries a stream may send."""

from __future__ import annotations

import math

from openai.types.chat import ChatCompletionTokenLogprob

from deployments.engines.token_logprobs import (
    BYTE_DECODER,
    NO_PROBABILITY,
    TokenBytesOf,
    logprob_entry,
    most_likely,
    released,
    reported,
)

BYTE_ENCODER = {byte: char for char, byte in BYTE_DECODER.items()}


def byte_level(text: bytes) -> str:
    return "".join(BYTE_ENCODER[byte] for byte in text)


class FakeTokenizer:
    """convert_ids_to_tokens over a fixed piece list, as a Hugging Face tokenizer answers."""

    def __init__(self, pieces: list[str], byte_level: bool, special: tuple[int, ...] = ()):
        self.pieces = pieces
        self.byte_decoder = BYTE_DECODER if byte_level else None
        self.all_special_ids = list(special)

    def convert_ids_to_tokens(self, token: int) -> str | None:
        return self.pieces[token] if token < len(self.pieces) else None


def test_the_byte_alphabet_covers_every_byte_once():
    assert sorted(BYTE_DECODER.values()) == list(range(256))
    assert BYTE_DECODER["A"] == 65 and BYTE_DECODER["\u0120"] == 32  # "Ġ" is the space


def test_byte_level_tokens_give_their_exact_bytes_even_inside_a_character():
    emoji = "😀".encode()  # four bytes, split over two tokens
    pieces = [byte_level(b" h"), byte_level(b" " + emoji[:3]), byte_level(emoji[3:]),
              "<|im_end|>"]
    bytes_of = TokenBytesOf(FakeTokenizer(pieces, byte_level=True, special=(3,)))
    assert bytes_of(0) == b" h"
    assert bytes_of(1) + bytes_of(2) == b" " + emoji
    assert bytes_of(3) == b"<|im_end|>"
    assert bytes_of(99) == b""


def test_sentencepiece_tokens_give_spaces_and_raw_bytes():
    bytes_of = TokenBytesOf(FakeTokenizer(["\u2581hello", "<0xE2>", "ok"], byte_level=False))
    assert (bytes_of(0), bytes_of(1), bytes_of(2)) == (b" hello", b"\xe2", b"ok")


def test_an_entry_has_openais_shape():
    bytes_of = TokenBytesOf(FakeTokenizer([byte_level(b" a"), byte_level(b" b"),
                                           byte_level("é".encode()[:1])], byte_level=True))
    entry = logprob_entry(0, -0.1, [(0, -0.1), (1, -2.5), (2, -math.inf)], bytes_of)
    parsed = ChatCompletionTokenLogprob.model_validate(entry)
    assert parsed.token == " a" and parsed.bytes == [32, 97] and parsed.logprob == -0.1
    assert [top.token for top in parsed.top_logprobs[:2]] == [" a", " b"]
    assert parsed.top_logprobs[2].logprob == NO_PROBABILITY  # JSON has no -Infinity
    assert parsed.top_logprobs[2].token == "\ufffd" and parsed.top_logprobs[2].bytes == [0xC3]


def test_reported_logprobs_are_finite():
    assert reported(-math.inf) == NO_PROBABILITY and reported(math.nan) == NO_PROBABILITY
    assert reported(-1e6) == NO_PROBABILITY and reported(-0.5) == -0.5


def test_most_likely_keeps_the_k_best_best_first():
    candidates = {4: -3.0, 9: -0.2, 1: -1.0, 2: -1.0}
    assert most_likely(candidates.items(), 3) == [(9, -0.2), (1, -1.0), (2, -1.0)]
    assert most_likely(candidates.items(), 0) == []


def test_a_streamed_entry_goes_out_once_its_text_has():
    ends = [2, 5, 5, 9]  # the text's length after each token
    assert released(ends, 0, emitted_chars=4, finished=False) == 1
    assert released(ends, 1, emitted_chars=5, finished=False) == 3
    assert released(ends, 3, emitted_chars=5, finished=False) == 3
    assert released(ends, 3, emitted_chars=5, finished=True) == 4  # a cut stop string's too
