"""How the engines that batch inside themselves take the sampling options: vLLM's logprobs
turned into OpenAI's entries and its n outputs into one completion; TensorRT-LLM's penalties
passed, and what it does not take a 400 naming the field; Neuron's logprobs mode left to the
plugin."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from openai.types.chat import ChatCompletionTokenLogprob

from deployments.core.config import TextEngineConfig
from deployments.core.errors import InvalidRequest
from deployments.core.generation import SamplingParams
from deployments.engines.neuron_text import neuron_engine_args
from deployments.engines.tensorrt_llm_text import sampling_kwargs
from deployments.engines.vllm_text import (
    _add,
    _copied,
    _empty_choice,
    _gathered,
    engine_args,
    greedy_copies,
    vllm_logprob_entries,
)


def token_bytes(token: int) -> bytes:
    return f"<{token}>".encode()


def logprob(value: float, rank: int) -> SimpleNamespace:
    return SimpleNamespace(logprob=value, rank=rank, decoded_token=None)


def test_vllm_positions_become_openai_entries_with_the_top_k_alone():
    # vLLM keeps the sampled token beside the top k; here it is not among them.
    positions = [{5: logprob(-3.0, 4), 1: logprob(-0.1, 1), 2: logprob(-2.0, 2)},
                 {2: logprob(-0.5, 1), 1: logprob(-1.5, 2)}]
    first, second = vllm_logprob_entries([5, 2], positions, 2, token_bytes)
    assert first["token"] == "<5>" and first["logprob"] == -3.0
    assert [top["token"] for top in first["top_logprobs"]] == ["<1>", "<2>"]
    assert [top["logprob"] for top in second["top_logprobs"]] == [-0.5, -1.5]
    ChatCompletionTokenLogprob.model_validate(first)


def test_top_logprobs_zero_lists_no_alternatives():
    [entry] = vllm_logprob_entries([3], [{3: logprob(-0.2, 1)}], 0, token_bytes)
    assert entry["top_logprobs"] == [] and entry["logprob"] == -0.2


def test_vllm_choices_gather_into_one_completion_counting_every_token():
    params = SamplingParams(n=2, logprobs=True)
    choices = [_empty_choice([1, 2, 3], params) for _ in range(2)]
    _add(choices[1], SimpleNamespace(text="b", token_ids=[7, 8], finish_reason=None), [{}, {}])
    _add(choices[0], SimpleNamespace(text="a", token_ids=[6], finish_reason="stop"), [{}])
    _add(choices[1], SimpleNamespace(text="c", token_ids=[9], finish_reason="length"), [{}])
    completion = _gathered(choices)
    assert [(c.text, c.finish_reason, len(c.logprobs)) for c in completion.choices] == [
        ("a", "stop", 1), ("bc", "length", 3)]
    assert completion.all_completion_tokens == 4 and completion.prompt_tokens == 3


def test_greedy_choices_are_decoded_once_by_vllm_and_answered_n_times():
    # vLLM refuses n > 1 at temperature 0; OpenAI answers n identical choices.
    params = SamplingParams(n=3, temperature=0, logprobs=True)
    copies, asked = greedy_copies(params)
    assert (copies, asked.n, asked.temperature) == (3, 1, 0)
    [only] = [_add(_empty_choice([1], params), SimpleNamespace(
        text="a", token_ids=[4, 5], finish_reason="stop"), [{}, {}])]
    completion = _gathered(_copied([only], copies))
    assert [c.text for c in completion.choices] == ["a"] * 3
    assert completion.all_completion_tokens == 6
    assert completion.choices[1].logprobs is not completion.choices[2].logprobs
    assert greedy_copies(SamplingParams(n=3, temperature=0.5)) == (1, SamplingParams(
        n=3, temperature=0.5))


def test_vllm_reports_the_logprobs_of_the_distribution_sampled_from():
    args = engine_args(TextEngineConfig(name="vllm"), "/m", "float32")
    assert args["logprobs_mode"] == "processed_logprobs"
    raw = TextEngineConfig(name="vllm", engine_kwargs={"logprobs_mode": "raw_logprobs"})
    assert engine_args(raw, "/m", "float32")["logprobs_mode"] == "raw_logprobs"


def test_neuron_leaves_the_logprobs_mode_to_its_plugin():
    assert "logprobs_mode" not in neuron_engine_args(TextEngineConfig(name="neuron"), "/m",
                                                     "bfloat16")


def test_tensorrt_llm_takes_the_penalties():
    kwargs = sampling_kwargs(SamplingParams(presence_penalty=0.5, frequency_penalty=-1.0))
    assert kwargs["presence_penalty"] == 0.5 and kwargs["frequency_penalty"] == -1.0
    assert "presence_penalty" not in sampling_kwargs(SamplingParams())


@pytest.mark.parametrize(("params", "field"), [
    (SamplingParams(n=2), "n"), (SamplingParams(logprobs=True), "logprobs"),
    (SamplingParams(logit_bias=((3, 1.0),)), "logit_bias")])
def test_tensorrt_llm_refuses_what_it_does_not_take_naming_the_field(params, field):
    with pytest.raises(InvalidRequest, match="tensorrt_llm") as raised:
        sampling_kwargs(params)
    assert raised.value.param == field
