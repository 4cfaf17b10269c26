"""A row's grammar as llguidance masks it, on a byte-level tokenizer: what it allows at each
step, end-of-sequence only once complete, and the bits read in plain Python."""

from __future__ import annotations

import json

import pytest
from llguidance import LLTokenizer, TokenizerWrapper

from deployments.core.errors import InvalidRequest
from deployments.core.json_grammar import checked_schema
from deployments.engines.grammar_mask import GrammarCompiler, allowed_ids

EOS = 256
VOCAB = 257


class ByteTokenizer:
    """One token per byte, and end-of-sequence."""

    eos_token_id, bos_token_id = EOS, None
    tokens = [bytes([i]) for i in range(256)] + [b"<eos>"]
    special_token_ids = [EOS]

    def __call__(self, text: bytes) -> list[int]:
        return list(text)


@pytest.fixture(scope="module")
def compiler() -> GrammarCompiler:
    return GrammarCompiler(LLTokenizer(TokenizerWrapper(ByteTokenizer())))


def allowed_text(grammar) -> set[str]:
    return {chr(i) if i < 256 else "<eos>" for i in allowed_ids(grammar.bitmask(), VOCAB)}


def feed(grammar, text: str) -> None:
    for byte in text.encode():
        grammar.accept(byte)


def test_allowed_ids_reads_the_bits_little_endian_32_to_a_word() -> None:
    words = [1 << 0 | 1 << 31, 1 << 1]
    bitmask = b"".join(word.to_bytes(4, "little") for word in words)
    assert allowed_ids(bitmask, 64) == [0, 31, 33]
    assert allowed_ids(bitmask, 32) == [0, 31]


def test_an_object_grammar_starts_with_a_brace_and_ends_only_when_complete(compiler) -> None:
    schema = checked_schema({"type": "object", "properties": {"a": {"enum": ["x", "y"]}},
                             "required": ["a"], "additionalProperties": False}, "schema")
    grammar = compiler.compile(schema)
    assert allowed_text(grammar) == {"{"}
    feed(grammar, '{"a":"')
    assert allowed_text(grammar) == {"x", "y"}
    feed(grammar, 'x"')
    assert "<eos>" not in allowed_text(grammar) and not grammar.complete
    feed(grammar, "}")
    assert grammar.complete
    assert allowed_text(grammar) == {"<eos>"}


def test_a_number_may_end_or_go_on_so_eos_is_allowed_beside_digits(compiler) -> None:
    grammar = compiler.compile(checked_schema({"type": "integer"}, "schema"))
    feed(grammar, "12")
    allowed = allowed_text(grammar)
    assert "<eos>" in allowed and "3" in allowed
    assert not grammar.complete


def test_compact_json_allows_no_whitespace_between_tokens(compiler) -> None:
    grammar = compiler.compile(checked_schema({"type": "array", "items": {"type": "integer"}},
                                              "schema"))
    feed(grammar, "[1")
    assert " " not in allowed_text(grammar) and "," in allowed_text(grammar)


def test_each_row_has_its_own_place_in_the_grammar(compiler) -> None:
    schema = checked_schema({"type": "object"}, "schema")
    first, second = compiler.compile(schema), compiler.compile(schema)
    feed(first, "{}")
    assert first.complete and not second.complete
    assert allowed_text(second) == {"{"}


def test_a_grammar_that_does_not_compile_is_the_requests_400(compiler) -> None:
    with pytest.raises(InvalidRequest):
        compiler.compile(json.dumps({"$ref": "#/nowhere"}))
