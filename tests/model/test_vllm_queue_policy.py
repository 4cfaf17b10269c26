"""vLLM under queue policy "slo": each request goes to AsyncLLM.generate with the priority of
its objective (with stand-ins for vLLM's modules), and the real vLLM, started with priority
scheduling, serves the requests waiting behind a busy engine earliest objective first."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import subprocess
import sys
import types
from dataclasses import dataclass, field

import pytest

from cluster.group_env import python_path
from deployments.core.errors import InternalFailure, Unavailable
from deployments.core.generation import SamplingParams
from deployments.core.models import model_path
from deployments.engines.vllm_text import NO_OBJECTIVE_PRIORITY, VllmTextEngine
from tests.conftest import REPO

BASE = 1_700_000_000.0


@dataclass
class Piece:
    index: int = 0
    text: str = "hi"
    token_ids: list[int] = field(default_factory=lambda: [7])
    finish_reason: str = "stop"


@dataclass
class Output:
    outputs: list[Piece] = field(default_factory=lambda: [Piece()])
    finished: bool = True


class FakeAsyncLLM:
    """Records the priority of each request; answers "hi" at once."""

    def __init__(self) -> None:
        self.priorities: list[int] = []

    def generate(self, prompt, sampling, request_id, *, priority: int = 0):
        self.priorities.append(priority)

        async def outputs():
            yield Output()

        return outputs()

    def get_num_unfinished_requests(self) -> int:
        return 0


class EngineDeadError(Exception):
    """Stands in for vllm.v1.engine.exceptions.EngineDeadError."""


class FailingAsyncLLM(FakeAsyncLLM):
    """Raises `error` from the outputs of every request, as a dead or failing engine does."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def generate(self, prompt, sampling, request_id, *, priority: int = 0):
        async def outputs():
            raise self.error
            yield

        return outputs()


@pytest.fixture
def fake_vllm(monkeypatch):
    """The few vLLM names VllmTextEngine imports while serving a request."""
    modules = {name: types.ModuleType(name) for name in (
        "vllm", "vllm.exceptions", "vllm.inputs", "vllm.sampling_params",
        "vllm.v1", "vllm.v1.engine", "vllm.v1.engine.exceptions")}
    modules["vllm"].SamplingParams = lambda **kwargs: kwargs
    modules["vllm.exceptions"].VLLMValidationError = type("VLLMValidationError", (Exception,), {})
    modules["vllm.v1.engine.exceptions"].EngineDeadError = EngineDeadError
    modules["vllm.inputs"].TokensPrompt = dict
    modules["vllm.sampling_params"].RequestOutputKind = types.SimpleNamespace(
        FINAL_ONLY="final", DELTA="delta")
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)


def engine(by_objective: bool) -> VllmTextEngine:
    """A VllmTextEngine around FakeAsyncLLM, as __init__ leaves it for the queue policy."""
    built = VllmTextEngine.__new__(VllmTextEngine)
    built.engine, built.by_objective, built.priority_base = FakeAsyncLLM(), by_objective, BASE
    built.counts, built.peak_unfinished = {"completed": 0, "aborted": 0, "rejected": 0}, 0
    return built


@pytest.mark.parametrize(("error", "raised"), [
    (EngineDeadError(), Unavailable), (RuntimeError("in vLLM"), InternalFailure)])
def test_a_vllm_failure_reaches_the_ingress_as_the_apps_own_error(fake_vllm, error, raised):
    failing = engine(by_objective=False)
    failing.engine = FailingAsyncLLM(error)
    with pytest.raises(raised) as caught:
        asyncio.run(failing.generate([1, 2], SamplingParams()))
    assert type(caught.value) is raised  # a class the ingress can unpickle
    assert pickle.loads(pickle.dumps(caught.value)).args == caught.value.args


def test_slo_gives_each_request_the_priority_of_its_objective(fake_vllm):
    slo = engine(by_objective=True)

    async def scenario():
        await slo.generate([1, 2], SamplingParams(), objective=BASE + 2.5)
        await slo.generate([1, 2], SamplingParams())
        return [delta async for delta in slo.stream([1, 2], SamplingParams(),
                                                     objective=BASE + 0.25)]

    streamed = asyncio.run(scenario())
    assert streamed[-1].completion.text == "hi"
    assert slo.engine.priorities == [2500, NO_OBJECTIVE_PRIORITY, 250]
    assert slo.counts["completed"] == 3


def test_fifo_leaves_every_priority_at_vllms_default(fake_vllm):
    fifo = engine(by_objective=False)
    asyncio.run(fifo.generate([1, 2], SamplingParams(), objective=BASE + 2.5))
    assert fifo.engine.priorities == [0]


VLLM_PYTHON = python_path("vllm")


@pytest.mark.skipif(not VLLM_PYTHON.exists(), reason="no vLLM venv (make setup-vllm)")
def test_real_vllm_serves_waiting_requests_earliest_objective_first(model_dir):
    """tests/vllm_priority_probe.py, in the vLLM venv: one request holds the only sequence slot
    while three more arrive in the order c, b, a; a's objective is the earliest, b has none."""
    model = model_path("smollm2-135m-instruct", model_dir)
    result = subprocess.run(
        [str(VLLM_PYTHON), str(REPO / "tests" / "vllm_priority_probe.py"), str(model)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["by_objective"] and report["queued_behind_the_blocker"], report
    assert report["order"] == ["a", "c", "b"]
