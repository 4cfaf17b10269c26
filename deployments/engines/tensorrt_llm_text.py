"""Text generation on NVIDIA GPUs with TensorRT-LLM's LLM API (in-flight batching).

`tensorrt_llm.LLM` schedules requests itself, like vLLM: each request is one `generate_async`
call, streamed with `streaming=True` (each output carries `text_diff`, the new text). Leaving a
stream early calls `abort()` on the request, which frees its KV-cache blocks.

Requests are served in arrival order whatever the queue policy: the LLM API's `generate_async`
takes no per-request priority (its `scheduling_params` holds attention-DP placement and an agent
hierarchy, not an order), so the objective, the class and the tenant are ignored.

Not verified on hardware here (no NVIDIA GPU on the development machine).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from deployments.core.deadline import before, items_before
from deployments.core.errors import InvalidRequest
from deployments.core.fair_share import ANONYMOUS, Share
from deployments.core.generation import Completion, SamplingParams, StreamDelta
from deployments.core.models import resolve
from deployments.engines.chat import chat_token_ids, text_token_ids
from deployments.engines.requires import require

# TensorRT-LLM reports "cancelled" and "timeout" where the OpenAI protocol knows "abort".
_FINISH_REASONS = {"stop": "stop", "length": "length", "cancelled": "abort", "timeout": "abort"}


def llm_kwargs(config: Any, model_path: str) -> dict[str, Any]:
    """tensorrt_llm.LLM keywords from a TextEngineConfig, as plain values; engine_kwargs override.

    `kv_cache_config` and `quant_config` stay dicts here and become TensorRT-LLM's KvCacheConfig
    and QuantConfig when the engine starts.
    """
    kwargs: dict[str, Any] = {
        "model": model_path,
        "dtype": config.dtype,
        "tensor_parallel_size": config.tensor_parallel_size,
        "max_batch_size": config.max_num_seqs,
        "kv_cache_config": {"free_gpu_memory_fraction": config.gpu_memory_utilization,
                            "enable_block_reuse": config.enable_prefix_caching},
    }
    if config.max_model_len is not None:
        kwargs["max_seq_len"] = config.max_model_len
    if config.quantization is not None:
        kwargs["quant_config"] = {"quant_algo": config.quantization.upper()}
    return {**kwargs, **config.engine_kwargs}


def check_fits(prompt_tokens: int, max_tokens: int, max_seq_len: int | None) -> None:
    """An InvalidRequest (a 400, as vLLM gives) when the prompt and the answer it asks for
    cannot fit the sequence length the engine was built for."""
    if max_seq_len is not None and prompt_tokens + max_tokens > max_seq_len:
        raise InvalidRequest(
            f"the prompt has {prompt_tokens} tokens and asks for {max_tokens} more; this model "
            f"takes at most {max_seq_len} tokens in all", "messages")


# What this engine does not pass to TensorRT-LLM yet (its n, logprobs and embedding bias
# take other shapes, unverified without a GPU here): a 400 naming the field.
UNSUPPORTED = {"n": lambda p: p.n > 1, "logprobs": lambda p: p.logprobs,
               "logit_bias": lambda p: bool(p.logit_bias),
               # not started with a guided-decoding backend
               "response_format": lambda p: p.json_schema is not None}


def sampling_kwargs(params: SamplingParams) -> dict[str, Any]:
    """tensorrt_llm.SamplingParams keywords; temperature 0 means greedy (top_k=1). A request
    asking for what UNSUPPORTED lists is an InvalidRequest."""
    for field, asked in UNSUPPORTED.items():
        if asked(params):
            raise InvalidRequest(f"{field}: the tensorrt_llm text engine does not serve it; "
                                 "use the transformers or vllm engine", field)
    kwargs: dict[str, Any] = {"max_tokens": params.max_tokens, "top_p": params.top_p,
                              "seed": params.seed, "stop": list(params.stop) or None}
    if params.presence_penalty:
        kwargs["presence_penalty"] = params.presence_penalty
    if params.frequency_penalty:
        kwargs["frequency_penalty"] = params.frequency_penalty
    if params.temperature <= 0:
        kwargs["top_k"] = 1
    else:
        kwargs["temperature"] = params.temperature
    return kwargs


class TensorRtLlmTextEngine:
    batches_itself = True
    by_objective = by_class = by_fair_share = False  # arrival order: see the module's docstring

    def __init__(self, model_path: str, config: Any) -> None:
        require("tensorrt_llm", "tensorrt-llm", "tensorrt_llm",
                "it needs an NVIDIA GPU; see nvidia.github.io/TensorRT-LLM for the install")
        from tensorrt_llm import LLM
        from tensorrt_llm.llmapi import KvCacheConfig, QuantAlgo, QuantConfig
        from transformers import AutoTokenizer

        kwargs = llm_kwargs(config, model_path)
        kwargs["kv_cache_config"] = KvCacheConfig(**kwargs["kv_cache_config"])
        if "quant_config" in kwargs:
            algo = kwargs["quant_config"]["quant_algo"]
            kwargs["quant_config"] = QuantConfig(quant_algo=QuantAlgo[algo])
        self.llm = LLM(**kwargs)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.max_seq_len = config.max_model_len
        self.counts = {"completed": 0, "aborted": 0, "rejected": 0}

    @classmethod
    def from_config(cls, config: Any, model_dir: str) -> TensorRtLlmTextEngine:
        return cls(str(resolve(config.model, model_dir)), config)

    def encode_chat(self, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
        return chat_token_ids(self.tokenizer, messages, tools)

    def encode_text(self, prompt: str) -> list[int]:
        return text_token_ids(self.tokenizer, prompt)

    async def generate(self, prompt: list[int], params: SamplingParams,
                       deadline: float | None = None, objective: float | None = None,
                       share: Share = ANONYMOUS) -> Completion:
        """The completion, or DeadlineExceeded (the request aborted) once the deadline passes."""
        return await before(deadline, self._generate(prompt, params), "the completion")

    async def _generate(self, prompt: list[int], params: SamplingParams) -> Completion:
        final = None
        async for output in self._outputs(prompt, params, streaming=False):
            final = output
        return self._completion(prompt, final.outputs[0])

    def stream(self, prompt: list[int], params: SamplingParams,
               deadline: float | None = None, objective: float | None = None,
               share: Share = ANONYMOUS) -> AsyncIterator[StreamDelta]:
        """Text deltas until the deadline (then DeadlineExceeded); leaving early aborts."""
        return items_before(deadline, self._stream(prompt, params), "the completion")

    async def _stream(self, prompt: list[int], params: SamplingParams
                      ) -> AsyncIterator[StreamDelta]:
        async for output in self._outputs(prompt, params, streaming=True):
            piece = output.outputs[0]
            if piece.text_diff:
                yield StreamDelta(piece.text_diff)
            if output.finished:
                yield StreamDelta("", self._completion(prompt, piece))

    async def _outputs(self, prompt: list[int], params: SamplingParams, streaming: bool):
        """The request's outputs; closing this early aborts the request in TensorRT-LLM."""
        from tensorrt_llm import SamplingParams as TrtSamplingParams

        try:
            check_fits(len(prompt), params.max_tokens, self.max_seq_len)
            result = self.llm.generate_async(
                prompt, TrtSamplingParams(**sampling_kwargs(params)), streaming=streaming)
        except ValueError as exc:  # TensorRT-LLM's own input checks (lengths, parameters)
            self.counts["rejected"] += 1
            raise InvalidRequest(str(exc), "messages") from None
        except InvalidRequest:
            self.counts["rejected"] += 1
            raise
        try:
            async for output in result:
                yield output
        finally:
            if result.finished:
                self.counts["completed"] += 1
            else:
                result.abort()
                self.counts["aborted"] += 1

    def _completion(self, prompt: list[int], piece: Any) -> Completion:
        reason = _FINISH_REASONS.get(piece.finish_reason or "length", "stop")
        return Completion(piece.text, len(prompt), len(piece.token_ids), reason)

    def stats(self) -> dict[str, int]:
        return dict(self.counts)

    async def check_health(self) -> None:
        return None  # the LLM API has no health call; a dead executor fails the requests
