"""The structured suite's json_schema: an extraction-like record of the story the prompt asks
for, whose shortest valid answer is far longer than the suite's largest max_tokens.

Why the floor matters: with free-form strings a small model closes the JSON after 30-40 tokens
while a free answer runs to max_tokens, so json's output tokens/s would carry twice the
per-request prefill per token and compare answer lengths, not the constraint's cost. Here
`minLength` and `minItems` keep the grammar from closing the record before about
SHORTEST_ANSWER_CHARS characters (compact JSON), several times what MAX_OUTPUT_TOKENS tokens
of English text hold, so both configurations stop at max_tokens (`finish_reason: "length"`). The
suite still checks the tokens per request it measured (structured_summary.length_mismatch).
"""

from __future__ import annotations

from typing import Any

MAX_OUTPUT_TOKENS = 80
SHORTEST_ANSWER_CHARS = 900


def _text(min_length: int, max_length: int | None = None) -> dict[str, Any]:
    bounds = {"maxLength": max_length} if max_length else {}
    return {"type": "string", "minLength": min_length, **bounds}


RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": _text(20, 120),
        "characters": {"type": "array", "items": _text(3, 40), "minItems": 3, "maxItems": 8},
        "setting": _text(20, 200),
        "story": _text(800),
    },
    "required": ["title", "characters", "setting", "story"],
    "additionalProperties": False,
}
