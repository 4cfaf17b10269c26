"""Engine selection by config: argument mapping of vLLM, Neuron and TensorRT-LLM, what happens
when an engine's package is missing, and that importing one engine imports no other's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from deployments.core.config import AppConfig, TextEngineConfig, VisionEngineConfig
from deployments.core.cpu_features import cpu_features
from deployments.core.generation import SamplingParams
from deployments.core.precision import Choice, cpu_dtype
from deployments.engines import load_text_engine, load_vision_engine
from deployments.engines.neuron_clip import trace_input_shape
from deployments.engines.neuron_text import neuron_engine_args
from deployments.engines.requires import MissingEngineError
from deployments.engines.tensorrt_llm_text import llm_kwargs, sampling_kwargs
from deployments.engines.vllm_text import GIB, _as_started, choose_dtype, engine_args

REPO = Path(__file__).resolve().parents[2]


def text_engine(**fields) -> TextEngineConfig:
    return TextEngineConfig(**fields)


def test_vllm_args_carry_every_knob():
    config = text_engine(name="vllm", dtype="bfloat16", max_model_len=4096, max_num_seqs=16,
                         quantization="fp8", enforce_eager=True, enable_prefix_caching=True,
                         gpu_memory_utilization=0.5, cpu_kvcache_space_gb=1.5,
                         tensor_parallel_size=2)
    args = engine_args(config, "/models/m")
    assert args == {
        "model": "/models/m", "served_model_name": "smollm2-135m-instruct",
        "dtype": "bfloat16", "max_model_len": 4096, "max_num_seqs": 16, "quantization": "fp8",
        "enforce_eager": True, "enable_prefix_caching": True, "gpu_memory_utilization": 0.5,
        "kv_cache_memory_bytes": int(1.5 * GIB), "tensor_parallel_size": 2,
        "disable_log_stats": True, "logprobs_mode": "processed_logprobs",
    }


def test_vllm_on_a_cpu_gets_the_cpus_dtype_and_on_an_accelerator_its_own_auto():
    auto = text_engine(name="vllm")
    on_cpu = choose_dtype(auto, on_cpu=True)
    assert on_cpu == cpu_dtype(cpu_features())
    assert engine_args(auto, "/m")["dtype"] == on_cpu.value
    assert choose_dtype(auto, on_cpu=False).value == "auto"
    assert neuron_engine_args(text_engine(name="neuron"), "/m")["dtype"] == "auto"
    forced = text_engine(name="vllm", dtype="float16")
    assert choose_dtype(forced, on_cpu=False).value == "float16"
    in_kwargs = text_engine(name="vllm", engine_kwargs={"dtype": "float32"})
    assert choose_dtype(in_kwargs, on_cpu=True).reason == "set in engine_kwargs"
    assert engine_args(in_kwargs, "/m")["dtype"] == "float32"


def test_vllm_reports_the_dtype_its_own_auto_settled_on():
    auto = choose_dtype(text_engine(name="vllm"), on_cpu=False)
    started = SimpleNamespace(model_config=SimpleNamespace(dtype="torch.bfloat16"))
    assert _as_started(auto, started) == Choice("bfloat16", auto.reason)
    assert _as_started(auto, SimpleNamespace()) == auto
    forced = Choice("float32", "set in the config")
    assert _as_started(forced, started) == forced


def test_vllm_args_leave_unset_knobs_to_vllm_and_take_engine_kwargs_last():
    args = engine_args(text_engine(name="vllm", engine_kwargs={"max_num_seqs": 4, "seed": 7}),
                       "/m")
    assert "max_model_len" not in args and "quantization" not in args
    assert "kv_cache_memory_bytes" not in args
    assert args["max_num_seqs"] == 4 and args["seed"] == 7


def test_neuron_args_fix_shapes_and_merge_neuron_overrides():
    config = text_engine(name="neuron", dtype="bfloat16", max_num_seqs=4, tensor_parallel_size=2,
                         cpu_kvcache_space_gb=1, engine_kwargs={"additional_config": {
                             "override_neuron_config": {"seq_len": 1024, "fused_qkv": True}}})
    args = neuron_engine_args(config, "/m")
    assert args["max_model_len"] == 2048 and args["tensor_parallel_size"] == 2
    assert args["additional_config"] == {"override_neuron_config": {
        "tp_degree": 2, "batch_size": 4, "seq_len": 1024, "fused_qkv": True}}
    for cpu_or_gpu_only in ("kv_cache_memory_bytes", "gpu_memory_utilization", "enforce_eager"):
        assert cpu_or_gpu_only not in args


def test_neuron_rejects_vllm_quantization_naming_where_it_goes():
    with pytest.raises(ValueError, match="override_neuron_config"):
        neuron_engine_args(text_engine(name="neuron", quantization="int8"), "/m")


def test_tensorrt_llm_kwargs():
    config = text_engine(name="tensorrt_llm", dtype="float16", max_model_len=8192,
                         max_num_seqs=64, quantization="fp8", gpu_memory_utilization=0.8,
                         enable_prefix_caching=True, tensor_parallel_size=4)
    assert llm_kwargs(config, "/m") == {
        "model": "/m", "dtype": "float16", "tensor_parallel_size": 4, "max_batch_size": 64,
        "max_seq_len": 8192, "quant_config": {"quant_algo": "FP8"},
        "kv_cache_config": {"free_gpu_memory_fraction": 0.8, "enable_block_reuse": True},
    }


def test_tensorrt_llm_sampling_is_greedy_at_temperature_zero():
    greedy = sampling_kwargs(SamplingParams(max_tokens=5, temperature=0.0, stop=("\n",)))
    assert greedy == {"max_tokens": 5, "top_p": 1.0, "seed": None, "stop": ["\n"], "top_k": 1}
    sampled = sampling_kwargs(SamplingParams(temperature=0.7, top_p=0.9, seed=3))
    assert sampled["temperature"] == 0.7 and "top_k" not in sampled and sampled["stop"] is None


def test_neuron_clip_trace_shape():
    assert trace_input_shape(8, 224) == (8, 3, 224, 224)
    assert trace_input_shape(2, (256, 192)) == (2, 3, 256, 192)


@pytest.mark.parametrize("name, package", [
    ("vllm", "'vllm'"), ("neuron", "'vllm-neuron'"), ("tensorrt_llm", "'tensorrt-llm'")])
def test_missing_text_engine_package_fails_in_one_sentence(tmp_path, name, package):
    with pytest.raises(MissingEngineError) as error:
        load_text_engine(text_engine(name=name, model=str(tmp_path)), str(tmp_path))
    message = str(error.value)
    assert package in message and message.count(". ") == 0 and "\n" not in message


def test_missing_neuron_vision_package_fails_naming_it(tmp_path):
    with pytest.raises(MissingEngineError, match="'torch-neuronx'"):
        load_vision_engine(VisionEngineConfig(name="neuron", checkpoint=str(tmp_path)),
                           str(tmp_path))


ENGINE_MODULES = {
    "deployments.engines.vllm_text": "vllm",
    "deployments.engines.neuron_text": "vllm",
    "deployments.engines.tensorrt_llm_text": "tensorrt_llm",
    "deployments.engines.transformers_text": "transformers",
    "deployments.engines.open_clip_engine": "open_clip",
    "deployments.engines.neuron_clip": "torch_neuronx",
    "deployments.engines.whisper": "faster_whisper",
}
HEAVY = ("vllm", "tensorrt_llm", "torch_neuronx", "transformers", "open_clip", "faster_whisper",
         "ctranslate2")


@pytest.mark.parametrize("module", sorted(ENGINE_MODULES))
def test_importing_an_engine_imports_no_other_engines_package(module):
    own = ENGINE_MODULES[module]
    code = (f"import sys, {module}; "
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.split()
    allowed = {own, "ctranslate2"} if own == "faster_whisper" else {own}
    assert set(out) <= allowed


def test_cpu_vllm_profile_names_the_vllm_venv_under_mmserve_home(monkeypatch, tmp_path):
    venv_python = tmp_path / "envs" / "vllm" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.touch()
    monkeypatch.setenv("MMSERVE_HOME", str(tmp_path))
    profile = yaml.safe_load((REPO / "cluster/profiles/cpu.yaml").read_text())
    config = AppConfig.model_validate(profile["applications"][0]["args"])
    assert config.text.engine.name == "vllm"
    options = config.text.resources.ray_actor_options()
    assert options["runtime_env"]["py_executable"] == str(venv_python)
    assert options["runtime_env"]["env_vars"]["VLLM_CACHE_ROOT"] == f"{tmp_path}/vllm-cache"
