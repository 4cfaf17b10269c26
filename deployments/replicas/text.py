"""Text generation deployment: completions, whole or streamed, through one engine contract
(async generate and stream). Every engine batches continuously: vLLM and TensorRT-LLM in their
own loop; transformers through its scheduler, stepped on the replica's model thread
(deployments/replicas/scheduled_text.py). The engine holds the queue, so under slo.scheduling
"slo" the replica turns away a request whose first token it predicts past the objective
(deployments/replicas/first_token_forecast.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from deployments.core import timing
from deployments.core.call_protocol import (
    NO_CONTEXT,
    CallContext,
    CompletionReply,
    StreamEnd,
    TextEvent,
    TokenDelta,
)
from deployments.core.config import TextSettings
from deployments.core.deadline import check
from deployments.core.errors import InvalidRequest
from deployments.core.generation import Completion, SamplingParams
from deployments.engines import load_text_engine
from deployments.engines.text_base import TextEngine
from deployments.replicas import metrics
from deployments.replicas.first_token_forecast import FirstTokenForecast
from deployments.replicas.replica_base import BatchedReplica
from deployments.replicas.scheduled_text import ScheduledTextEngine
from deployments.replicas.serve_options import SCHEDULING
from deployments.replicas.timed_calls import reports_timing

# What a text call completes: a chat's messages, or a plain prompt (/v1/completions).
Prompt = list[dict] | str


@serve.deployment
class TextGenerator(BatchedReplica):
    def __init__(self, settings: dict[str, Any], model_dir: str,
                 metrics_enabled: bool = True) -> None:
        super().__init__(TextSettings.model_validate(settings), metrics_enabled)
        engine = load_text_engine(self.settings.engine, model_dir)
        self.choices = getattr(engine, "choices", {})
        self.engine: TextEngine
        if engine.batches_itself:  # its own engine loop: every request straight to it
            self.engine = engine
        else:  # its scheduler, stepped on the model thread; user_config sizes its batch
            self.engine = ScheduledTextEngine(engine, self.run_model, self.stats)
            self.batchers = [self.engine]
        self.first_tokens = FirstTokenForecast(self.engine.by_objective,
                                               on_event=self.stats.count,
                                               serves_by_class=self.engine.by_class,
                                               serves_fair_shares=self.engine.by_fair_share)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        super().reconfigure(user_config)
        self.first_tokens.set_policy(user_config.get(SCHEDULING, "fifo"))

    async def record_autoscaling_stats(self) -> dict[str, float]:
        """No service rate: the capacity policy predicts a wait as backlog / rate, and a text
        replica's backlog is mostly streams already decoding, which wait for nothing; a
        finish rate (streams of seconds each) would make a group meeting its first-token
        objective look far behind it. Without a rate the policy counts the group busy past
        target_ongoing_requests per replica (its sequences decoded together)."""
        return {}

    def engine_stats(self) -> dict[str, int]:
        """The engine's own counts: requests running and waiting; the prefix cache's."""
        return self.engine.stats()

    async def check_health(self) -> None:
        await super().check_health()
        await self.engine.check_health()

    @reports_timing
    async def generate(self, messages: Prompt, params: SamplingParams,
                       ctx: CallContext = NO_CONTEXT) -> CompletionReply:
        check(ctx.deadline, "the completion")
        prompt = self._encode(messages, params)
        started, clock = time.time(), time.perf_counter()
        with self.first_tokens.track(ctx.objective, streamed=False, share=ctx.share):
            completion = await self.engine.generate(prompt, params, ctx.deadline, ctx.objective,
                                                    ctx.share)
        timing.record("model", started, time.perf_counter() - clock)
        self._count_tokens(completion)
        return completion_reply(completion)

    @reports_timing
    async def stream(self, messages: Prompt, params: SamplingParams,
                     ctx: CallContext = NO_CONTEXT) -> AsyncIterator[TextEvent]:
        """Yields TokenDelta events, then one StreamEnd; raises DeadlineExceeded, ending the
        stream, once the deadline passes. When timed, its stages are "first-token" (the engine's
        queue and prefill) and "decode"."""
        check(ctx.deadline, "the completion")
        prompt = self._encode(messages, params)
        finished = False
        with self.first_tokens.track(ctx.objective, streamed=True, share=ctx.share) as first_token:
            deltas = self.engine.stream(prompt, params, ctx.deadline, ctx.objective, ctx.share)
            clock = _StreamClock()
            try:
                async for delta in deltas:
                    first_token.came()
                    clock.tick()
                    if delta.completion is not None:
                        finished = True
                        self._count_tokens(delta.completion)
                        yield _stream_end(delta.completion)
                    elif delta.text or delta.logprobs:
                        yield TokenDelta(delta.text, delta.index, delta.logprobs)
            finally:
                await deltas.aclose()  # ends the row in its batch, or aborts it in the engine
                if not finished:  # the client disconnected, or the deadline passed
                    self.stats.count("stream_aborted")

    def _encode(self, messages: Prompt, params: SamplingParams) -> list[int]:
        """A chat's messages through the chat template (with the tools it offers); a plain
        prompt as it is."""
        tools = params.tool_list()
        if isinstance(messages, str):
            prompt, field = self.engine.encode_text(messages), "prompt"
        elif tools:
            prompt, field = self.engine.encode_chat(messages, tools), "messages"
        else:
            prompt, field = self.engine.encode_chat(messages), "messages"
        limit = self.settings.engine.max_prompt_tokens
        if len(prompt) > limit:
            raise InvalidRequest(f"the prompt has {len(prompt)} tokens; the limit is {limit}",
                                 field)
        return prompt

    def _count_tokens(self, completion: Completion) -> None:
        metrics.add(metrics.tokens(), completion.prompt_tokens, {"kind": "prompt"})
        metrics.add(metrics.tokens(), completion.all_completion_tokens, {"kind": "completion"})


def completion_reply(completion: Completion) -> CompletionReply:
    """The reply of a whole completion: its first choice, the others, every choice's tokens."""
    others = [{"text": choice.text, "finish_reason": choice.finish_reason,
               "logprobs": choice.logprobs} for choice in completion.other_choices]
    return CompletionReply(completion.text, completion.prompt_tokens,
                           completion.all_completion_tokens, completion.finish_reason,
                           completion.logprobs, others)


def _stream_end(completion: Completion) -> StreamEnd:
    reasons = [choice.finish_reason for choice in completion.choices]
    return StreamEnd(completion.prompt_tokens, completion.all_completion_tokens,
                     completion.finish_reason, reasons if len(reasons) > 1 else [])


class _StreamClock:
    """A stream's "first-token" and "decode" stages, recorded as its items arrive."""

    def __init__(self) -> None:
        self.started, self.clock = time.time(), time.perf_counter()
        self.first: float | None = None

    def tick(self) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
            timing.record("first-token", self.started, now - self.clock)
        else:
            timing.record("decode", self.started + self.first - self.clock, now - self.first)
