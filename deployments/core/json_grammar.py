"""A JSON Schema as the grammar that constrains a text engine's output, and the check that
turns a schema the grammar cannot enforce into a 400 before any work.

The grammar is llguidance's (bench/grammar_libraries.py measured the candidates): the
transformers engine masks each constrained row's logits with it (deployments/engines/
grammar_mask.py) and vLLM runs the same library as its "guidance" backend, both in compact
JSON (no whitespace between tokens), so a schema the front end accepts is one both engines
enforce alike. A keyword llguidance does not implement (`not`, `uniqueItems`, ...) is an
error here rather than ignored: an answer that could break the schema is never a 200.
"""

from __future__ import annotations

import json
from typing import Any

from deployments.core.errors import InvalidRequest

# What `response_format: {"type": "json_object"}` asks for: any JSON object.
JSON_OBJECT_SCHEMA = '{"type":"object"}'
# Compact JSON: a tiny model left free to place whitespace may write it forever.
COMPILE_DEFAULTS = {"whitespace_flexible": False}


def grammar_of(schema: str) -> str:
    """The llguidance grammar of a JSON Schema given as JSON text."""
    from llguidance import LLMatcher

    return LLMatcher.grammar_from_json_schema(schema, defaults=COMPILE_DEFAULTS)


def checked_schema(schema: Any, param: str) -> str:
    """The schema as compact JSON text, once llguidance can enforce all of it; else
    InvalidRequest naming `param` and what it cannot enforce."""
    from llguidance import LLMatcher

    if not isinstance(schema, dict):
        raise InvalidRequest(f"{param} must be a JSON Schema object", param)
    try:
        text = json.dumps(schema, separators=(",", ":"), allow_nan=False)
        error = LLMatcher.validate_grammar(grammar_of(text))
    except ValueError as exc:
        error = str(exc)
    if error:
        raise InvalidRequest(f"{param} is not a JSON Schema this server can enforce: "
                             f"{_one_line(error)}", param)
    return text


def _one_line(error: str, limit: int = 300) -> str:
    return " ".join(error.split())[:limit]
