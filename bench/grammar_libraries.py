"""Which grammar library constrains the transformers engine's JSON output: llguidance, xgrammar
and outlines-core measured on the app's tokenizer.

For each library: the time to prepare the tokenizer (once per engine), the time to compile
each schema (once per request), the time to compute one token mask (once per constrained row
and decode step, on the model thread) and to advance by a token, over the tokens of a valid
instance of each schema (for llguidance also the app's whole per-row step: the mask and its
-inf on the row's logits); and which JSON Schema features each one enforces: a feature is
"enforced" when its valid instance is accepted and its invalid one refused, "ignored" when
both are accepted, "refused" when the schema does not compile, "wrong" when the valid instance
is refused.

Runs in the vLLM venv, which has all three (`make setup-vllm`):
    ~/.cache/mmserve/envs/vllm/bin/python -m bench.grammar_libraries \\
        --model ~/.cache/mmserve/models/smollm2-135m-instruct \\
        --out bench/results/grammar_libraries.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PERSON = {"type": "object", "properties": {
    "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "email": {"type": "string"}}, "required": ["name", "age"], "additionalProperties": False}
ORDER = {"type": "object", "properties": {
    "id": {"type": "string"},
    "status": {"enum": ["pending", "shipped", "delivered"]},
    "items": {"type": "array", "minItems": 1, "maxItems": 5, "items": {
        "type": "object", "properties": {"sku": {"type": "string"},
                                         "quantity": {"type": "integer", "minimum": 1},
                                         "price": {"type": "number", "minimum": 0}},
        "required": ["sku", "quantity", "price"], "additionalProperties": False}},
    "address": {"type": "object", "properties": {"city": {"type": "string"},
                                                 "zip": {"type": "string"}},
                "required": ["city"], "additionalProperties": False}},
    "required": ["id", "status", "items"], "additionalProperties": False}
TOOL_CALLS = {"type": "array", "minItems": 1, "items": {"type": "object", "anyOf": [
    {"properties": {"name": {"type": "string", "enum": ["get_weather"]},
                    "parameters": {"type": "object", "properties": {
                        "city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                        "required": ["city"]}},
     "required": ["name", "parameters"]},
    {"properties": {"name": {"type": "string", "enum": ["search"]},
                    "parameters": {"type": "object", "properties": {
                        "query": {"type": "string"}}, "required": ["query"]}},
     "required": ["name", "parameters"]}]}}
# name: (schema, a valid instance) for the timings
SCHEMAS: dict[str, tuple[dict, Any]] = {
    "json_object": ({"type": "object"}, {"answer": "yes", "score": 3, "tags": ["a", "b"]}),
    "person": (PERSON, {"name": "Ada Lovelace", "age": 36, "email": "ada@example.com"}),
    "order": (ORDER, {"id": "A-17", "status": "shipped", "items": [
        {"sku": "pen", "quantity": 2, "price": 1.5}, {"sku": "ink", "quantity": 1, "price": 7}],
        "address": {"city": "Paris", "zip": "75001"}}),
    "tool_calls": (TOOL_CALLS, [{"name": "get_weather",
                                 "parameters": {"city": "Paris", "unit": "c"}}]),
}
# feature: (schema, valid instance, invalid instance)
FEATURES: dict[str, tuple[dict, Any, Any]] = {
    "required": ({"type": "object", "properties": {"a": {"type": "integer"}},
                  "required": ["a"]}, {"a": 1}, {}),
    "additionalProperties false": ({"type": "object", "properties": {"a": {"type": "integer"}},
                                    "additionalProperties": False}, {"a": 1}, {"a": 1, "b": 2}),
    "enum": ({"enum": ["x", "y"]}, "x", "z"),
    "const": ({"const": "x"}, "x", "y"),
    "anyOf": ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, 1, True),
    "oneOf": ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, "a", None),
    "allOf": ({"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}},
                          "required": ["a"]}]}, {"a": 1}, {}),
    "$ref/$defs": ({"$defs": {"n": {"type": "integer"}}, "type": "object",
                    "properties": {"a": {"$ref": "#/$defs/n"}}, "required": ["a"]},
                   {"a": 1}, {"a": "x"}),
    "recursive $ref": ({"$defs": {"node": {"type": "object", "properties": {
        "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}},
        "required": ["next"]}}, "$ref": "#/$defs/node"},
        {"next": {"next": None}}, {"next": 1}),
    "type list (nullable)": ({"type": ["string", "null"]}, None, 1),
    "minimum/maximum": ({"type": "integer", "minimum": 1, "maximum": 9}, 5, 12),
    "exclusiveMinimum": ({"type": "number", "exclusiveMinimum": 0}, 0.5, 0),
    "multipleOf": ({"type": "integer", "multipleOf": 5}, 10, 7),
    "minLength/maxLength": ({"type": "string", "minLength": 2, "maxLength": 3}, "ab", "abcd"),
    "pattern": ({"type": "string", "pattern": "^[a-z]+[0-9]$"}, "ab1", "1ab"),
    "format date-time": ({"type": "string", "format": "date-time"},
                         "2026-01-02T03:04:05Z", "yesterday"),
    "format email": ({"type": "string", "format": "email"}, "a@b.co", "not an email"),
    "format uuid": ({"type": "string", "format": "uuid"},
                    "123e4567-e89b-12d3-a456-426614174000", "123"),
    "minItems/maxItems": ({"type": "array", "items": {"type": "integer"}, "minItems": 1,
                           "maxItems": 2}, [1], [1, 2, 3]),
    "prefixItems": ({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}],
                     "items": False}, [1, "a"], ["a", 1]),
    "uniqueItems": ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
                    [1, 2], [1, 1]),
    "contains": ({"type": "array", "contains": {"const": 3}}, [1, 3], [1, 2]),
    "minProperties/maxProperties": ({"type": "object", "maxProperties": 1}, {"a": 1},
                                    {"a": 1, "b": 2}),
    "additionalProperties schema": ({"type": "object",
                                     "additionalProperties": {"type": "integer"}},
                                    {"a": 1}, {"a": "x"}),
    "patternProperties": ({"type": "object", "patternProperties": {"^x": {"type": "integer"}},
                           "additionalProperties": False}, {"x1": 1}, {"y": 1}),
    "propertyNames": ({"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}},
                      {"ab": 1}, {"A1": 1}),
    "dependentRequired": ({"type": "object", "properties": {"a": {}, "b": {}},
                           "dependentRequired": {"a": ["b"]}}, {"a": 1, "b": 2}, {"a": 1}),
    "if/then/else": ({"if": {"type": "integer"}, "then": {"minimum": 0}}, 1, -1),
    "not": ({"not": {"type": "string"}}, 1, "a"),
}
COMPACT, SPACED = (",", ":"), (", ", ": ")


class Library:
    """One library on one tokenizer: a compiled schema's matcher, its mask, its advance."""

    name: str
    compiled: dict[str, Any]

    def compile(self, schema: dict) -> Any: ...

    def fresh(self, schema: dict) -> Any:
        """The schema's matcher at its start, compiled once."""
        key = json.dumps(schema, sort_keys=True)
        if key not in self.compiled:
            self.compiled[key] = self.compile(schema)
        matcher = self.compiled[key]
        matcher.reset()
        return matcher

    def mask(self, matcher: Any) -> None: ...

    def advance(self, matcher: Any, token: int) -> bool: ...

    def accepts_text(self, schema: dict, text: str) -> bool: ...


class Llguidance(Library):
    name = "llguidance"

    def __init__(self, tokenizer: Any) -> None:
        import llguidance
        import llguidance.hf
        import llguidance.torch
        import torch

        self.llg, self.tokenizer, self.compiled = llguidance, tokenizer, {}
        self.llg_torch = llguidance.torch  # imported here: not inside the first timed mask
        self.ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer)
        self.bitmask = torch.zeros((1, (self.ll_tokenizer.vocab_size + 31) // 32),
                                   dtype=torch.int32)

    def compile(self, schema: dict) -> Any:
        grammar = self.llg.LLMatcher.grammar_from_json_schema(
            schema, defaults={"whitespace_flexible": False})
        error = self.llg.LLMatcher.validate_grammar(grammar)
        if error:
            raise ValueError(error)
        matcher = self.llg.LLMatcher(self.ll_tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise ValueError(matcher.get_error())
        return matcher

    def mask(self, matcher: Any) -> None:
        self.llg_torch.fill_next_token_bitmask(matcher, self.bitmask, 0)

    def advance(self, matcher: Any, token: int) -> bool:
        return matcher.consume_token(token)

    def accepts_text(self, schema: dict, text: str) -> bool:
        matcher = self.fresh(schema)
        return matcher.consume_tokens(self.tokenizer.encode(text)) and matcher.is_accepting()


class Xgrammar(Library):
    name = "xgrammar"

    def __init__(self, tokenizer: Any) -> None:
        import torch
        import xgrammar

        self.xgr, self.tokenizer, self.compiled = xgrammar, tokenizer, {}
        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=len(tokenizer))
        self.compiler = xgrammar.GrammarCompiler(info, cache_enabled=False)
        self.bitmask = xgrammar.allocate_token_bitmask(1, info.vocab_size)
        self.torch = torch

    def compile(self, schema: dict) -> Any:
        grammar = self.compiler.compile_json_schema(json.dumps(schema), any_whitespace=False,
                                                    separators=COMPACT)
        return self.xgr.GrammarMatcher(grammar)

    def mask(self, matcher: Any) -> None:
        matcher.fill_next_token_bitmask(self.bitmask, 0)

    def advance(self, matcher: Any, token: int) -> bool:
        return matcher.accept_token(token)

    def accepts_text(self, schema: dict, text: str) -> bool:
        matcher = self.fresh(schema)
        if not all(matcher.accept_token(t) for t in self.tokenizer.encode(text)):
            return False
        return matcher.is_terminated() or matcher.accept_token(self.tokenizer.eos_token_id)


class OutlinesCore(Library):
    name = "outlines-core"

    def __init__(self, tokenizer: Any) -> None:
        import outlines_core
        import torch
        from vllm.v1.structured_output.utils import get_outlines_vocabulary

        self.oc, self.tokenizer, self.compiled = outlines_core, tokenizer, {}
        self.vocabulary = get_outlines_vocabulary(tokenizer).inner
        self.bitmask = torch.zeros(((len(tokenizer) + 31) // 32,), dtype=torch.int32)

    def compile(self, schema: dict) -> Any:
        from outlines_core.json_schema import build_regex_from_schema

        regex = build_regex_from_schema(json.dumps(schema), whitespace_pattern="")
        return self.oc.Guide(self.oc.Index(regex, self.vocabulary))

    def mask(self, matcher: Any) -> None:
        matcher.write_mask_into(self.bitmask.data_ptr(), self.bitmask.numel(),
                                self.bitmask.element_size())

    def advance(self, matcher: Any, token: int) -> bool:
        matcher.advance(token)
        return True

    def accepts_text(self, schema: dict, text: str) -> bool:
        guide = self.fresh(schema)
        try:
            for token in self.tokenizer.encode(text):
                guide.advance(token)
        except Exception:  # noqa: BLE001 - a refused token raises
            return False
        return guide.is_finished() or self.tokenizer.eos_token_id in guide.get_tokens()


LIBRARIES: dict[str, type[Library]] = {"llguidance": Llguidance, "xgrammar": Xgrammar,
                                       "outlines-core": OutlinesCore}


def timed(work: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def measure_schema(library: Library, schema: dict, instance: Any, tokenizer: Any,
                   repeats: int) -> dict[str, Any]:
    """Compile time (median of `repeats`) and per-token mask and advance times over the
    instance's tokens, in the separators the library accepts."""
    compiles = [timed(lambda: library.compile(schema))[1] for _ in range(repeats)]
    text = next((json.dumps(instance, separators=s) for s in (COMPACT, SPACED)
                 if _accepts(library, schema, json.dumps(instance, separators=s))), None)
    if text is None:
        return {"compile_ms": _ms(statistics.median(compiles)), "error": "instance refused"}
    tokens = tokenizer.encode(text)
    masks, advances = [], []
    for _ in range(repeats):
        matcher = library.fresh(schema)
        for token in tokens:
            masks.append(timed(lambda m=matcher: library.mask(m))[1])
            advances.append(timed(lambda m=matcher, t=token: library.advance(m, t))[1])
    measured = {"compile_ms": _ms(statistics.median(compiles)), "tokens": len(tokens),
                "mask_us_mean": round(statistics.fmean(masks) * 1e6, 1),
                "mask_us_p95": round(_p95(masks) * 1e6, 1),
                "advance_us_mean": round(statistics.fmean(advances) * 1e6, 1)}
    if isinstance(library, Llguidance):
        measured["app_mask_us_mean"] = app_mask_us(library, schema, tokens, repeats)
    return measured


def app_mask_us(library: Llguidance, schema: dict, tokens: list[int], repeats: int) -> float:
    """What the app's scheduler spends per constrained row and step: the bitmask as bytes
    and its -inf onto a row of float32 logits (deployments/engines/grammar_mask.py)."""
    import torch

    from deployments.engines.grammar_mask import masked_logits

    logits = torch.zeros(library.ll_tokenizer.vocab_size)
    masked_logits(logits, library.fresh(schema).compute_bitmask())  # its first torch ops untimed
    spent = []
    for _ in range(repeats):
        matcher = library.fresh(schema)
        for token in tokens:
            spent.append(timed(lambda m=matcher: masked_logits(logits, m.compute_bitmask()))[1])
            matcher.consume_token(token)
    return round(statistics.fmean(spent) * 1e6, 1)


def _accepts(library: Library, schema: dict, text: str) -> bool:
    try:
        return library.accepts_text(schema, text)
    except Exception:  # noqa: BLE001 - refused, whichever way the library says it
        return False


def coverage(library: Library) -> dict[str, str]:
    found = {}
    for feature, (schema, valid, invalid) in FEATURES.items():
        try:
            library.fresh(schema)
        except Exception:  # noqa: BLE001 - the library's refusal
            found[feature] = "refused"
            continue
        good = any(_accepts(library, schema, json.dumps(valid, separators=s))
                   for s in (COMPACT, SPACED))
        bad = any(_accepts(library, schema, json.dumps(invalid, separators=s))
                  for s in (COMPACT, SPACED))
        found[feature] = "wrong" if not good else "ignored" if bad else "enforced"
    return found


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a Hugging Face model directory")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--libraries", default=",".join(LIBRARIES),
                        help=f"comma-separated, of {', '.join(LIBRARIES)}")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    report: dict[str, Any] = {"command": " ".join(["python -m bench.grammar_libraries",
                                                    *sys.argv[1:]]),
                              "model": args.model, "vocab": len(tokenizer),
                              "python": platform.python_version(),
                              "machine": platform.processor() or platform.machine(),
                              "libraries": {}}
    for name in args.libraries.split(","):
        library, setup_s = timed(lambda m=LIBRARIES[name]: m(tokenizer))
        report["libraries"][library.name] = {
            "tokenizer_setup_ms": _ms(setup_s),
            "schemas": {name: measure_schema(library, schema, instance, tokenizer, args.repeats)
                        for name, (schema, instance) in SCHEMAS.items()},
            "features": coverage(library)}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
