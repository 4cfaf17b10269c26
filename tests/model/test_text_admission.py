"""The text replica's admission through TextGenerator, built without Ray around a fake engine
that batches itself (vLLM's shape) and answers each request when the test opens its gate, on
a fake clock: a stream's first token measured, then, behind a stream still waiting for its
first token, a stream predicted past its objective turned away before it reaches the engine
and counted; under fifo the same request served and
its predicted miss counted."""

from __future__ import annotations

import asyncio

import pytest

from deployments.core.call_protocol import CallContext, StreamEnd
from deployments.core.config import TextSettings
from deployments.core.errors import SloUnreachable
from deployments.core.generation import Completion, SamplingParams, StreamDelta
from deployments.replicas import text as text_replicas

T0 = 1_000.0
FIRST_TOKEN_S = 2.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class GatedEngine:
    """Each request waits for its own gate (in the order sent), then answers one word."""

    batches_itself = True
    by_objective = by_class = True
    by_fair_share = False

    def __init__(self) -> None:
        self.gates: list[asyncio.Event] = []

    def encode_chat(self, messages: list[dict]) -> list[int]:
        return [1, 2, 3]

    async def generate(self, prompt, params, deadline=None, objective=None,
                       share=None) -> Completion:
        await self._gate().wait()
        return Completion("a ", len(prompt), 1, "length")

    async def stream(self, prompt, params, deadline=None, objective=None, share=None):
        await self._gate().wait()
        yield StreamDelta("a ")
        yield StreamDelta("", Completion("a ", len(prompt), 1, "length"))

    def _gate(self) -> asyncio.Event:
        self.gates.append(asyncio.Event())
        return self.gates[-1]

    def stats(self) -> dict[str, int]:
        return {}

    async def check_health(self) -> None:
        return None


def replica_over(engine: GatedEngine, monkeypatch, scheduling: str):
    monkeypatch.setattr(text_replicas, "load_text_engine", lambda config, model_dir: engine)
    replica = text_replicas.TextGenerator.func_or_class(
        TextSettings().model_dump(exclude={"batching"}), "/unused")
    replica.reconfigure({"max_batch_size": 8, "batch_wait_timeout_s": 0.0,
                         "scheduling": scheduling})
    clock = Clock()
    replica.first_tokens.clock = clock
    return replica, clock


CHAT = [{"role": "user", "content": "hi"}]
PARAMS = SamplingParams(max_tokens=1, temperature=0)


async def collect(stream) -> list:
    return [item async for item in stream]


async def first_token_measured(replica, engine: GatedEngine, clock: Clock) -> None:
    """One stream, alone, whose first token takes FIRST_TOKEN_S."""
    stream = asyncio.ensure_future(collect(replica.stream(CHAT, PARAMS,
                                                          CallContext(objective=T0 + 10))))
    while not engine.gates:
        await asyncio.sleep(0)
    clock.now += FIRST_TOKEN_S
    engine.gates[0].set()
    assert isinstance((await stream)[-1], StreamEnd)


async def waiting_ahead(replica, engine: GatedEngine, clock: Clock) -> asyncio.Future:
    """A stream in the engine, its first token not yet come, due before the next request:
    with nothing waiting ahead, a request is always admitted."""
    sent = len(engine.gates)
    stream = asyncio.ensure_future(collect(replica.stream(
        CHAT, PARAMS, CallContext(objective=clock.now + 0.1))))
    while len(engine.gates) == sent:
        await asyncio.sleep(0)
    return stream


def test_under_slo_a_stream_predicted_past_its_objective_never_reaches_the_engine(
        monkeypatch):
    engine = GatedEngine()
    replica, clock = replica_over(engine, monkeypatch, "slo")

    async def scenario() -> SloUnreachable:
        await first_token_measured(replica, engine, clock)
        ahead = await waiting_ahead(replica, engine, clock)
        late = CallContext(objective=clock.now + FIRST_TOKEN_S - 1.5)
        with pytest.raises(SloUnreachable) as refused:
            await collect(replica.stream(CHAT, PARAMS, late))
        engine.gates[1].set()
        await ahead
        return refused.value

    error = asyncio.run(scenario())
    assert error.retry_after_s == pytest.approx(1.5)
    assert len(engine.gates) == 2
    events = replica.batch_stats()["events"]
    assert events["slo_rejected"] == 1 and "stream_aborted" not in events


def test_under_fifo_the_same_request_is_served_and_its_predicted_miss_counted(monkeypatch):
    engine = GatedEngine()
    replica, clock = replica_over(engine, monkeypatch, "fifo")

    async def scenario() -> str:
        await first_token_measured(replica, engine, clock)
        ahead = await waiting_ahead(replica, engine, clock)
        whole = asyncio.ensure_future(replica.generate(
            CHAT, PARAMS, CallContext(objective=clock.now + FIRST_TOKEN_S - 1.5)))
        while len(engine.gates) < 3:
            await asyncio.sleep(0)
        for gate in engine.gates[1:]:
            gate.set()
        await ahead
        return (await whole).text

    assert asyncio.run(scenario()) == "a "
    assert replica.batch_stats()["events"] == {"slo_predicted_miss": 1}
