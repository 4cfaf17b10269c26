"""Run in the vLLM venv by tests/model/test_vllm_queue_policy.py: starts VllmTextEngine with
queue policy "slo" and one sequence slot, holds the slot with a long request, then sends three
short requests in the order c, b, a (objectives: in 30 s, none, in 10 s) and prints, as its
last line, JSON with the order they finished in and whether all three were queued while the
long request still held the slot.

    python tests/vllm_priority_probe.py MODEL_FOLDER
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from deployments.core.config import TextEngineConfig
from deployments.core.generation import SamplingParams
from deployments.engines.vllm_text import VllmTextEngine

SHORT = SamplingParams(max_tokens=4, temperature=0)
HOLD_TOKENS = 300  # decode steps the long request holds the slot for


async def hold_the_slot(engine: VllmTextEngine, prompt: list[int],
                        started: asyncio.Event) -> None:
    """A request that never stops early (end of sequence ignored), straight to vLLM."""
    from vllm import SamplingParams as VllmSamplingParams
    from vllm.inputs import TokensPrompt

    params = VllmSamplingParams(max_tokens=HOLD_TOKENS, ignore_eos=True, temperature=0)
    async for _ in engine.engine.generate(TokensPrompt(prompt_token_ids=prompt), params,
                                          "holds-the-slot"):
        started.set()


async def probe(model: str) -> dict:
    config = TextEngineConfig(name="vllm", queue_policy="slo", max_num_seqs=1,
                              enforce_eager=True, max_model_len=512, cpu_kvcache_space_gb=1)
    engine = VllmTextEngine(model, config)
    try:
        prompt = engine.encode_chat([{"role": "user", "content": "Count to one hundred."}])
        started = asyncio.Event()
        holder = asyncio.ensure_future(hold_the_slot(engine, prompt, started))
        await started.wait()
        finished: list[str] = []

        async def ask(name: str, objective: float | None) -> None:
            await engine.generate(prompt, SHORT, objective=objective)
            finished.append(name)

        now, asks = time.time(), []
        for name, objective in (("c", now + 30), ("b", None), ("a", now + 10)):
            asks.append(asyncio.ensure_future(ask(name, objective)))
            await asyncio.sleep(0.05)  # arrivals c, b, a, in that order
        while engine.engine.get_num_unfinished_requests() < 4 and not holder.done():
            await asyncio.sleep(0.01)
        queued = not holder.done()
        await asyncio.gather(holder, *asks)
        return {"order": finished, "queued_behind_the_blocker": queued,
                "by_objective": engine.by_objective}
    finally:
        engine.engine.shutdown()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(sys.argv[1]))))
