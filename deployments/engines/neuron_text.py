"""Text generation on AWS Inferentia/Trainium: vLLM with the Neuron plugin (`vllm-neuron`).

The plugin registers itself as vLLM's platform when it is installed on a Neuron instance, so the
engine is vLLM's AsyncLLM, driven exactly as on CPU/GPU (vllm_text.py); only the arguments
differ. Neuron compiles the model ahead of time for fixed shapes: one batch of `max_num_seqs`
sequences of `max_model_len` tokens, sharded over `tensor_parallel_size` NeuronCores. NxD
Inference settings go under engine_kwargs.additional_config.override_neuron_config.

Requests are served in arrival order whatever the queue policy: the plugin's scheduler
(vllm_neuron/core/scheduler.py, ContinuousBatchingNeuronScheduler) moves vLLM's waiting queue
with deque calls (popleft, append) that vLLM's priority queue does not have, so the engine never
gets `scheduling_policy="priority"`, and its requests keep priority 0.

Not verified on hardware here (no Neuron device on the development machine).
"""

from __future__ import annotations

from typing import Any

from deployments.engines.vllm_text import VllmTextEngine, choose_dtype, engine_args

DEFAULT_MAX_MODEL_LEN = 2048
# Arguments of vLLM's CPU/GPU memory planning that mean nothing to NeuronCores.
_NOT_FOR_NEURON = ("kv_cache_memory_bytes", "gpu_memory_utilization", "enforce_eager")


def neuron_engine_args(config: Any, model_path: str, dtype: str | None = None
                       ) -> dict[str, Any]:
    """AsyncEngineArgs keywords for vLLM on Neuron from a TextEngineConfig."""
    if config.quantization is not None:
        raise ValueError(
            "the neuron engine takes no `quantization`; set NxD Inference's quantized, "
            "quantization_type and quantized_checkpoints_path in "
            "engine_kwargs.additional_config.override_neuron_config")
    dtype = dtype or choose_dtype(config, on_cpu=False).value  # auto: the Neuron plugin's
    args = {k: v for k, v in engine_args(config, model_path, dtype).items()
            if k not in _NOT_FOR_NEURON}
    args.pop("scheduling_policy", None)  # arrival order: see the module's docstring
    # The plugin samples with its own on-device sampler, which reads no logprobs_mode; its
    # logprobs are the model's raw ones (docs/openai-compatibility.md).
    if "logprobs_mode" not in config.engine_kwargs:
        args.pop("logprobs_mode", None)
    args.setdefault("max_model_len", DEFAULT_MAX_MODEL_LEN)
    # From the merged arguments, so that engine_kwargs' tensor_parallel_size (or max_num_seqs,
    # max_model_len) and the shapes NxD Inference compiles for always agree.
    overrides = {"tp_degree": args["tensor_parallel_size"], "batch_size": args["max_num_seqs"],
                 "seq_len": args["max_model_len"]}
    extra = dict(config.engine_kwargs.get("additional_config", {}))
    overrides.update(extra.pop("override_neuron_config", {}))
    args["additional_config"] = {**extra, "override_neuron_config": overrides}
    return args


class NeuronTextEngine(VllmTextEngine):
    package = ("vllm_neuron", "vllm-neuron", "neuron")
    setup_hint = "install it on a Neuron instance from github.com/vllm-project/vllm-neuron " \
                 "(it brings its own vLLM)"

    def engine_args(self, config: Any, model_path: str, dtype: str) -> dict[str, Any]:
        return neuron_engine_args(config, model_path, dtype)
