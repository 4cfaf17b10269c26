"""Structured outputs on the transformers engine with the real SmolLM2: a constrained row
decodes beside unconstrained ones, which decode exactly as they would alone (float32, greedy);
every answer under a grammar parses and validates, for the first 50 of the 200 schemas
hypothesis-jsonschema generated (all 200 run through the route on both engines:
tests/integration/vllm); the grammar ends a row once complete, max_tokens cuts it with
"length"; tools are rendered into the prompt."""

from __future__ import annotations

import json
from collections import Counter

import jsonschema
import pytest

from deployments.core.generation import Completion, RowControl, SamplingParams
from deployments.core.json_grammar import JSON_OBJECT_SCHEMA, checked_schema
from deployments.core.models import model_path
from deployments.engines.transformers_text import TransformersTextEngine
from tests.json_schemas import ANSWER_TOKENS, generated_schemas, kinds, prompt_for

PROPERTY_SCHEMAS = 200  # the property test's, as tests/integration/vllm runs them
ENGINE_SCHEMAS = 50  # of those, answered here by the engine in-process
PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 20},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "pets": {"type": "array", "items": {"enum": ["cat", "dog", "fish"]}, "maxItems": 3}},
    "required": ["name", "age", "pets"], "additionalProperties": False}
SHIP = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                      "big": {"type": "boolean"}},
        "required": ["name", "big"], "additionalProperties": False}
QUESTIONS = ("Where is Rotterdam?", "What is a container ship?", "Say hello.")
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "weather",
                                            "parameters": {"type": "object", "properties": {
                                                "city": {"type": "string"}}}}}


@pytest.fixture(scope="module")
def engine(model_dir):
    return TransformersTextEngine(str(model_path("smollm2-135m-instruct", model_dir)),
                                  prefix_cache_mib=0)


def chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def constrained(schema: dict, max_tokens: int = 128) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, temperature=0.0,
                          json_schema=checked_schema(schema, "schema"))


def sampled(schema: dict, seed: int) -> SamplingParams:
    return SamplingParams(max_tokens=ANSWER_TOKENS, temperature=1.0, seed=seed,
                          json_schema=checked_schema(schema, "schema"))


def run_all(engine, prompts: list[list[int]], params: list[SamplingParams],
            max_running: int = 16) -> list[Completion]:
    """Every row through one scheduler, at most `max_running` decoding together: rows join
    and leave between steps, as they do when served."""
    scheduler = engine.new_scheduler(max_running)
    outcomes: list = [None] * len(prompts)
    for i, (prompt, sampling) in enumerate(zip(prompts, params, strict=True)):
        scheduler.add(engine.new_sequence(prompt, sampling, RowControl(),
                                          on_finish=lambda r, i=i: outcomes.__setitem__(i, r)))
    while scheduler.has_work():
        scheduler.step()
    return outcomes


def test_constrained_rows_leave_the_rows_beside_them_as_they_would_be_alone(engine) -> None:
    free = SamplingParams(max_tokens=24, temperature=0.0)
    free_prompts = [engine.encode_chat(chat(q)) for q in QUESTIONS]
    alone = [engine.generate_batch([p], [free])[0] for p in free_prompts]
    person = engine.encode_chat(chat("Describe a person as JSON."))
    ship = engine.encode_chat(chat("Describe a ship as JSON."))
    prompts = [free_prompts[0], person, free_prompts[1], ship, free_prompts[2]]
    params = [free, constrained(PERSON), free, constrained(SHIP), free]
    mixed = engine.generate_batch(prompts, params)
    assert [(c.text, c.completion_tokens) for c in (mixed[0], mixed[2], mixed[4])] == \
        [(c.text, c.completion_tokens) for c in alone]
    for answer, schema in ((mixed[1], PERSON), (mixed[3], SHIP)):
        assert answer.finish_reason == "stop", answer
        jsonschema.validate(json.loads(answer.text), schema)


def test_json_object_is_an_object(engine) -> None:
    [answer] = engine.generate_batch(
        [engine.encode_chat(chat("Reply with a JSON object with a greeting."))],
        [SamplingParams(max_tokens=128, temperature=0.0, json_schema=JSON_OBJECT_SCHEMA)])
    assert answer.finish_reason == "stop", answer
    assert isinstance(json.loads(answer.text), dict)


def test_a_complete_grammar_ends_the_row_and_max_tokens_cuts_it_with_length(engine) -> None:
    prompt = engine.encode_chat(chat("Is the sea salty? Answer yes or no."))
    choice = {"enum": ["yes", "no"]}
    [whole, cut] = engine.generate_batch(
        [prompt, prompt], [constrained(choice), constrained(PERSON, max_tokens=3)])
    assert whole.finish_reason == "stop" and json.loads(whole.text) in ("yes", "no")
    assert whole.completion_tokens == len(engine.tokenizer.encode(whole.text))
    assert cut.finish_reason == "length" and cut.completion_tokens == 3
    assert cut.text.startswith('{"name"')


def test_a_sampled_row_stays_inside_its_grammar(engine) -> None:
    prompt = engine.encode_chat(chat("Describe a person as JSON."))
    params = [SamplingParams(max_tokens=128, temperature=1.0, seed=seed,
                             json_schema=checked_schema(PERSON, "schema")) for seed in range(4)]
    for answer in engine.generate_batch([prompt] * 4, params):
        assert answer.finish_reason == "stop", answer
        jsonschema.validate(json.loads(answer.text), PERSON)


def test_the_200_generated_schemas_hold_every_kind() -> None:
    schemas = generated_schemas(PROPERTY_SCHEMAS)
    assert all(count >= 20 for count in kinds(schemas).values()), kinds(schemas)


def test_every_answer_under_generated_schemas_parses_and_validates(engine) -> None:
    """Sampled, seeded: each answer under its own seed, reproducible. The first
    ENGINE_SCHEMAS of the property test's schemas, in one batch of the engine; all of them
    run through the app's route on both engines (tests/integration/vllm)."""
    schemas = generated_schemas(PROPERTY_SCHEMAS)[:ENGINE_SCHEMAS]
    answers = run_all(engine, [engine.encode_chat(prompt_for(s)) for s in schemas],
                      [sampled(s, seed) for seed, s in enumerate(schemas)])
    failures = []
    for schema, answer in zip(schemas, answers, strict=True):
        try:
            assert answer.finish_reason == "stop", answer.finish_reason
            jsonschema.validate(json.loads(answer.text), schema)
        except (AssertionError, ValueError, jsonschema.ValidationError) as error:
            failures.append((schema, answer.text[:120], str(error)[:120]))
    print(Counter(a.finish_reason for a in answers),
          sum(a.completion_tokens for a in answers) / len(answers), "tokens on average")
    assert not failures, (len(failures), failures[:8])


def test_tools_are_offered_in_the_prompt_and_a_tool_loop_renders(engine) -> None:
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    loop = [{"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": '{"celsius": 21}', "tool_call_id": "call_1"}]
    text = engine.tokenizer.decode(engine.encode_chat(loop, [WEATHER]))
    assert "<tools>" in text and json.dumps(WEATHER) in text
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}' in text
    assert '<tool_response>\n{"celsius": 21}\n</tool_response>' in text
    assert text.rstrip().endswith("<|im_start|>assistant")
