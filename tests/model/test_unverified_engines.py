"""The engines this machine cannot run (TensorRT-LLM, Neuron) exercised against small fakes of
their libraries (tests/fakes/): what our code does around the library, not the library."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from deployments.core.config import AppConfig, TextEngineConfig, VisionEngineConfig
from deployments.core.errors import DeadlineExceeded, InvalidRequest
from deployments.core.generation import SamplingParams
from deployments.engines import load_text_engine, load_vision_engine
from deployments.engines.neuron_clip import compiled_tower_path
from deployments.engines.neuron_text import neuron_engine_args
from deployments.engines.tensorrt_llm_text import check_fits
from serve_app.http_errors import status_of

REPO = Path(__file__).resolve().parents[2]
FAKES = Path(__file__).resolve().parents[1] / "fakes"
MESSAGES = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def fakes(monkeypatch):
    monkeypatch.syspath_prepend(str(FAKES))
    yield
    for name in [m for m in sys.modules if m.startswith(("tensorrt_llm", "torch_neuronx"))]:
        del sys.modules[name]


@pytest.fixture
def trt(fakes, model_dir):
    config = TextEngineConfig(name="tensorrt_llm", max_model_len=256, quantization="fp8",
                              enable_prefix_caching=True)
    return load_text_engine(config, model_dir)


def test_tensorrt_llm_is_built_from_its_config_with_the_library_types(trt):
    from tensorrt_llm.llmapi import QuantAlgo

    kwargs = trt.llm.kwargs
    assert kwargs["max_seq_len"] == 256 and kwargs["max_batch_size"] == 32
    assert kwargs["kv_cache_config"].enable_block_reuse is True
    assert kwargs["quant_config"].quant_algo is QuantAlgo.FP8


def test_tensorrt_llm_generates_and_streams_the_same_completion(trt):
    prompt = trt.encode_chat(MESSAGES)
    params = SamplingParams(max_tokens=5, temperature=0.0)
    whole = asyncio.run(trt.generate(prompt, params))

    async def streamed():
        return [delta async for delta in trt.stream(prompt, params)]

    deltas = asyncio.run(streamed())
    assert "".join(d.text for d in deltas) == whole.text
    assert deltas[-1].completion == whole
    assert (whole.prompt_tokens, whole.completion_tokens) == (len(prompt), 5)
    assert trt.llm.requests[0].sampling.top_k == 1  # temperature 0 is greedy
    assert trt.stats() == {"completed": 2, "aborted": 0, "rejected": 0}


def test_leaving_a_tensorrt_llm_stream_early_aborts_the_request(trt):
    async def first_delta_only():
        stream = trt.stream(trt.encode_chat(MESSAGES), SamplingParams(max_tokens=8))
        await anext(stream)
        await stream.aclose()

    asyncio.run(first_delta_only())
    assert trt.llm.requests[0].aborted
    assert trt.stats()["aborted"] == 1


def test_a_tensorrt_llm_prompt_too_long_is_a_400_not_a_500(trt):
    prompt = list(range(250))
    with pytest.raises(InvalidRequest) as caught:
        asyncio.run(trt.generate(prompt, SamplingParams(max_tokens=16)))
    assert status_of(caught.value) == 400 and caught.value.param == "messages"
    assert "250 tokens" in caught.value.message
    with pytest.raises(InvalidRequest, match="max_tokens must be at least 1"):  # the library's
        asyncio.run(trt.generate([1, 2], SamplingParams(max_tokens=0)))
    assert trt.stats()["rejected"] == 2 and not trt.llm.requests


def test_a_tensorrt_llm_request_past_its_deadline_is_aborted(trt):
    prompt = trt.encode_chat(MESSAGES)
    with pytest.raises(DeadlineExceeded):
        asyncio.run(trt.generate(prompt, SamplingParams(max_tokens=8), time.time() - 1))

    async def streamed_until(deadline: float) -> list:
        return [delta async for delta in trt.stream(prompt, SamplingParams(max_tokens=8),
                                                    deadline)]

    with pytest.raises(DeadlineExceeded):
        asyncio.run(streamed_until(time.time() - 1))
    assert trt.stats()["completed"] == 0


def test_fitting_the_sequence_length():
    check_fits(200, 56, 256)
    check_fits(10_000, 10, None)  # unknown here: the library decides
    with pytest.raises(InvalidRequest):
        check_fits(200, 57, 256)


def test_the_inferentia_profile_compiles_for_the_cores_its_text_replica_holds():
    profile = yaml.safe_load((REPO / "cluster/profiles/inferentia.yaml").read_text())
    settings = profile["applications"][0]["args"]
    text = AppConfig.model_validate(settings).text
    args = neuron_engine_args(text.engine, "/m")
    cores = text.resources.resources["neuron_cores"]
    assert args["tensor_parallel_size"] == cores
    assert args["additional_config"]["override_neuron_config"]["tp_degree"] == cores


def test_neuron_shapes_follow_engine_kwargs_too():
    config = TextEngineConfig(name="neuron", engine_kwargs={
        "tensor_parallel_size": 8, "max_num_seqs": 2, "max_model_len": 512})
    overrides = neuron_engine_args(config, "/m")["additional_config"]["override_neuron_config"]
    assert overrides == {"tp_degree": 8, "batch_size": 2, "seq_len": 512}


def test_the_neuron_clip_cache_is_keyed_by_checkpoint_bytes_and_dtype(tmp_path):
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    first.write_bytes(b"weights one")
    second.write_bytes(b"weights two")
    paths = {compiled_tower_path("/store", "ViT-B-32", dtype, 8, str(checkpoint))
             for checkpoint in (first, second) for dtype in ("float32", "bfloat16")}
    assert len(paths) == 4
    assert all(p.parent == Path("/store/neuron") and "ViT-B-32" in p.name for p in paths)


def test_neuron_clip_compiles_once_in_its_dtype_and_reloads(fakes, model_dir, tmp_path):
    import torch
    import torch_neuronx

    config = VisionEngineConfig(name="neuron", dtype="bfloat16", neuron_batch_size=2)
    cache = tmp_path / "store"
    # The compiled tower goes under the engine's model_dir: point it at a temp store whose
    # checkpoint is the real one, so the test leaves the shared model store untouched.
    cache.mkdir()
    (cache / "clip-vit-b-32").symlink_to(Path(model_dir) / "clip-vit-b-32")
    engine = load_vision_engine(config, str(cache))
    assert torch_neuronx.traced_dtypes == [torch.bfloat16]
    assert len(list((cache / "neuron").glob("ViT-B-32-bfloat16-b2-*.pt"))) == 1
    images = [Image.new("RGB", (64, 48), (200, 30, 30)), Image.new("RGB", (32, 32))]
    vectors = engine.embed_images(images)
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    load_vision_engine(config, str(cache))
    assert torch_neuronx.traced_dtypes == [torch.bfloat16]  # loaded, not compiled again


def test_a_neuron_clip_save_cut_short_leaves_no_file_and_the_next_start_compiles(
        fakes, model_dir, tmp_path, monkeypatch):
    import torch
    import torch_neuronx

    def save_cut_short(module, path) -> None:  # the disk fills half way through the file
        with open(path, "wb") as partial:
            partial.write(b"PK\x03\x04 half a TorchScript archive")
        raise OSError("No space left on device")

    config = VisionEngineConfig(name="neuron", neuron_batch_size=2, dtype="float32")
    cache = tmp_path / "store"
    cache.mkdir()
    (cache / "clip-vit-b-32").symlink_to(Path(model_dir) / "clip-vit-b-32")
    with monkeypatch.context() as patched:
        patched.setattr(torch.jit, "save", save_cut_short)
        with pytest.raises(OSError, match="No space left"):
            load_vision_engine(config, str(cache))
    assert list((cache / "neuron").iterdir()) == []  # nothing a later start would load
    engine = load_vision_engine(config, str(cache))
    assert torch_neuronx.traced_dtypes == [torch.float32, torch.float32]  # compiled anew
    assert engine.embed_images([Image.new("RGB", (32, 32))]).shape[0] == 1
    assert [p.suffix for p in (cache / "neuron").iterdir()] == [".pt"]
