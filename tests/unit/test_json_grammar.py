"""A JSON Schema is accepted only when the grammar can enforce all of it; else a 400 naming
the field, before any work."""

from __future__ import annotations

import json

import pytest

from deployments.core.errors import InvalidRequest
from deployments.core.json_grammar import checked_schema

PARAM = "response_format.json_schema.schema"


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}},
     "required": ["a"], "additionalProperties": False},
    {"type": "array", "items": {"enum": ["x", "y"]}, "minItems": 1, "maxItems": 3},
    {"$defs": {"n": {"type": "number"}}, "anyOf": [{"$ref": "#/$defs/n"}, {"type": "null"}]},
    {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
    {"type": "string", "format": "date-time"},
])
def test_an_enforceable_schema_comes_back_as_compact_json(schema: dict) -> None:
    text = checked_schema(schema, PARAM)
    assert json.loads(text) == schema
    assert ": " not in text and ", " not in text


@pytest.mark.parametrize(("schema", "says"), [
    ({"type": "array", "uniqueItems": True}, "uniqueItems"),
    ({"not": {"type": "string"}}, "not"),
    ({"type": "widget"}, "widget"),
    ({"type": "string", "pattern": "(unclosed"}, "unclosed"),
    ({"type": "string", "format": "no-such-format"}, "no-such-format"),
    ({"$ref": "#/$defs/missing"}, "missing"),
])
def test_a_schema_the_grammar_cannot_enforce_is_a_400_saying_why(schema: dict, says: str
                                                                  ) -> None:
    with pytest.raises(InvalidRequest) as raised:
        checked_schema(schema, PARAM)
    assert raised.value.param == PARAM
    assert says in raised.value.message


@pytest.mark.parametrize("schema", [[], "object", 3, None])
def test_a_schema_that_is_not_an_object_is_a_400(schema: object) -> None:
    with pytest.raises(InvalidRequest, match="JSON Schema object"):
        checked_schema(schema, PARAM)


def test_a_schema_with_a_non_finite_number_is_a_400() -> None:
    with pytest.raises(InvalidRequest):
        checked_schema({"type": "number", "maximum": float("inf")}, PARAM)
