"""A completion choice's logprobs in the legacy Completions shape, from the engines' entries:
tokens, their logprobs, the most likely tokens with the chosen one, and where each token starts
in the text, across the chunks of a stream too."""

from __future__ import annotations

from openai.types.completion_choice import Logprobs

from serve_app.legacy_logprobs import LegacyLogprobs


def entry(token: str, logprob: float, tops: list[tuple[str, float]] = (),
          raw: bytes | None = None) -> dict:
    """An engine's entry (deployments/engines/token_logprobs.py's shape)."""
    raw = token.encode() if raw is None else raw
    return {"token": token, "logprob": logprob, "bytes": list(raw),
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())}
                             for t, lp in tops]}


def test_each_token_has_its_text_logprob_tops_and_offset():
    entries = [entry("Hello", -0.1, [("Hello", -0.1), ("Hi", -2.0), ("Hey", -3.0)]),
               entry(" world", -0.5, [(" there", -0.4), (" world", -0.5)])]
    shaped = Logprobs.model_validate(LegacyLogprobs(2).shaped(entries))
    assert shaped.tokens == ["Hello", " world"]
    assert shaped.token_logprobs == [-0.1, -0.5]
    assert shaped.top_logprobs == [{"Hello": -0.1, "Hi": -2.0},
                                   {" there": -0.4, " world": -0.5}]
    assert shaped.text_offset == [0, 5]


def test_the_chosen_token_is_listed_beside_the_top_ones_when_not_among_them():
    entries = [entry(" b", -1.5, [(" a", -0.3), (" b", -1.5)])]
    assert LegacyLogprobs(1).shaped(entries)["top_logprobs"] == [{" a": -0.3, " b": -1.5}]
    assert LegacyLogprobs(0).shaped(entries)["top_logprobs"] == [{" b": -1.5}]


def test_offsets_count_characters_of_the_text_when_a_token_holds_part_of_one():
    e_acute = "é".encode()
    entries = [entry("\ufffd", -1.0, raw=e_acute[:1]), entry("\ufffd", -0.1, raw=e_acute[1:]),
               entry("x", -0.2), entry("\u4e2d", -0.3), entry("y", -0.4)]
    assert LegacyLogprobs(0).shaped(entries)["text_offset"] == [0, 0, 1, 2, 3]


def test_a_streamed_choices_offsets_run_on_across_its_chunks():
    choice = LegacyLogprobs(0)
    first = choice.shaped([entry("ab", -0.1), entry("c", -0.2)])
    empty = choice.shaped([])
    second = choice.shaped([entry("de", -0.3)])
    assert (first["text_offset"], second["text_offset"]) == ([0, 2], [3])
    assert empty == {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
