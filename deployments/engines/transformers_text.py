"""Text generation with Hugging Face transformers, continuously batched.

`model.generate` runs one batch to its end with one sampling configuration. Serving needs each
request to join the running batch between decode steps and leave it as soon as it finishes,
with its own temperature, top_p, seeded RNG, stop strings and max_tokens: the engine holds a
scheduler (scheduler.py) over a model runner (model_runner.py) whose batch keeps the KV cache of
its running rows (kv_batch.py) and reuses the KV of prompt prefixes it has computed before
(prefix_cache.py). One request's state is a Sequence (sequence.py).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import torch

from deployments.core.cpu_features import cpu_features
from deployments.core.errors import InvalidRequest, ServeError
from deployments.core.generation import Completion, RowControl, SamplingParams
from deployments.core.models import resolve
from deployments.core.precision import resolve_dtype
from deployments.engines.chat import chat_token_ids, text_token_ids
from deployments.engines.choice_fork import ChoiceGroup, choice_seed
from deployments.engines.grammar_mask import GrammarCompiler
from deployments.engines.model_runner import ModelRunner
from deployments.engines.penalties import check_logit_bias
from deployments.engines.prefix_cache import PrefixCache
from deployments.engines.quantize import check_quantization, quantize_linear_int8
from deployments.engines.sampling import make_generator
from deployments.engines.scheduler import Scheduler
from deployments.engines.sequence import Sequence
from deployments.engines.token_logprobs import TokenBytesOf

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# Left float32 by int8 quantization (Llama-family names): the MLP down-projection, whose input
# has outliers (perplexity 19.7 -> 46 when quantized), and the head tied to the embeddings.
KEEP_FLOAT_FOR_INT8 = ("down_proj", "lm_head")
MIB = 1 << 20
logger = logging.getLogger(__name__)


def attention_for(dtype: str, attention: str) -> str:
    """"auto": PyTorch's SDPA in float32; plain matmuls in bfloat16, where this CPU's SDPA
    kernel took 70% of a 16-row decode step and eager attention made the step 1.9x faster
    (torch.profiler here: 139 -> 74 ms; float32 SDPA 152 ms)."""
    if attention != "auto":
        return attention
    return "eager" if dtype == "bfloat16" else "sdpa"


class TransformersTextEngine:
    # the deployment runs its scheduler (deployments/replicas/scheduled_text.py)
    batches_itself = False

    def __init__(self, model_path: str, dtype: str = "float32", threads: int = 1,
                 quantization: str | None = None, prefix_cache_mib: int = 256,
                 max_prefill_tokens_per_step: int = 512, attention: str = "auto",
                 queue_policy: str = "fifo") -> None:
        """`dtype` "auto" is chosen from this CPU's flags (deployments/core/precision.py);
        the choice and its reason are in `choices`. `queue_policy` orders the requests waiting
        for their prefill (waiting_queue.py)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.choices = {"dtype": resolve_dtype(dtype, cpu_features())}
        dtype = self.choices["dtype"].value
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        check_quantization(quantization, dtype)
        torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=_DTYPES[dtype], attn_implementation=attention_for(dtype, attention),
        ).eval()
        if quantization == "int8":
            self.model = quantize_linear_int8(self.model, KEEP_FLOAT_FOR_INT8)
        self.eos_ids = self._eos_ids()
        self.token_bytes = TokenBytesOf(self.tokenizer)
        self.grammars = self._grammar_compiler()
        self.prefix_cache = PrefixCache(prefix_cache_mib * MIB) if prefix_cache_mib else None
        self.runner = ModelRunner(self.model, self.prefix_cache)
        self.max_prefill_tokens_per_step = max_prefill_tokens_per_step
        self.queue_policy = queue_policy
        self.scheduler = self.new_scheduler()  # the replica's; run on its model thread

    @classmethod
    def from_config(cls, config: Any, model_dir: str) -> TransformersTextEngine:
        return cls(str(resolve(config.model, model_dir)), config.dtype, config.threads,
                   config.quantization,
                   config.prefix_cache_mib if config.enable_prefix_caching else 0,
                   config.max_prefill_tokens_per_step, config.attention,
                   config.queue_policy or "fifo")

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def _grammar_compiler(self) -> GrammarCompiler | None:
        """llguidance over this tokenizer; None (structured outputs a 400) when it cannot
        read it (a slow tokenizer) or is not installed."""
        try:
            return GrammarCompiler.for_hf_tokenizer(self.tokenizer, self.model.config.vocab_size)
        except (ValueError, ImportError) as error:
            logger.warning("structured outputs are off: %s", error)
            return None

    def encode_chat(self, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
        return chat_token_ids(self.tokenizer, messages, tools)

    def encode_text(self, prompt: str) -> list[int]:
        return text_token_ids(self.tokenizer, prompt)

    def detokenize(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def new_scheduler(self, max_running: int = 16,
                      max_prefill_tokens_per_step: int | None = None) -> Scheduler:
        return Scheduler(self.runner, self.detokenize, self.eos_ids, max_running,
                         max_prefill_tokens_per_step or self.max_prefill_tokens_per_step,
                         self.queue_policy, self.token_bytes)

    def new_sequence(self, prompt: list[int], params: SamplingParams, control: RowControl,
                     on_finish: Any = None) -> Sequence:
        """A request ready for a scheduler; a seed torch rejects (its last choice's included),
        a logit_bias token outside the vocabulary or a JSON Schema its grammar cannot compile
        raises InvalidRequest here, before the request takes a place in any batch. A request
        of n choices gathers its rows' outcomes into one (choice_fork.py)."""
        check_logit_bias(params, self.model.config.vocab_size)
        if params.n > 1:
            make_generator(replace(params, seed=choice_seed(params.seed, params.n - 1)))
        sequence = Sequence(prompt, params, make_generator(params), control)
        if params.json_schema is not None:
            if self.grammars is None:
                raise InvalidRequest("structured outputs are off on this replica: llguidance "
                                     "cannot read its model's tokenizer", "response_format")
            sequence.grammar = self.grammars.compile(params.json_schema)
        if on_finish is not None:
            sequence.on_finish = on_finish
        if params.n > 1:
            sequence.choices = ChoiceGroup(params.n, sequence.on_finish)
            sequence.on_finish = sequence.choices.finisher(0)
        return sequence

    def generate_batch(
        self, prompts: list[list[int]], params: list[SamplingParams],
        controls: list[RowControl] | None = None,
    ) -> list[Completion | Exception]:
        """Blocking, on a scheduler of its own (offline use, a server without a model thread):
        per row its Completion or its own error. Every row is admitted at once; a deadline
        passing mid-decode fails its row (DeadlineExceeded), a cancelled row ends with "abort",
        a row whose control has `on_text` gets its text after each step."""
        controls = controls or [RowControl() for _ in prompts]
        outcomes: list[Completion | Exception | None] = [None] * len(prompts)
        scheduler = self.new_scheduler(max(1, len(prompts)), max_prefill_tokens_per_step=1 << 30)
        for i, (prompt, sampling, control) in enumerate(
                zip(prompts, params, controls, strict=True)):
            try:
                scheduler.add(self.new_sequence(prompt, sampling, control,
                                                on_finish=_store_at(outcomes, i)))
            except ServeError as error:
                outcomes[i] = error
        while scheduler.has_work():
            scheduler.step()
        return outcomes  # type: ignore[return-value]


def _store_at(outcomes: list, index: int):
    def store(outcome: Completion | Exception) -> None:
        outcomes[index] = outcome
    return store
