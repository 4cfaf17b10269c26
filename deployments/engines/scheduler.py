"""Iteration-level scheduling: requests join the running batch between decode steps and leave
it the moment they finish.

Each `step` first admits waiting requests (each prefilled alone, reusing a cached prefix, its
first token sampled at once), up to `max_running` rows and a prefill budget in tokens per step,
so a burst of new prompts cannot stall the rows already decoding for long; then runs one decode
step of every running row together. Waiting requests are admitted in the order of the queue
policy (waiting_queue.py): interactive before batch, tenants by weighted fair share, and each
tenant's by arrival ("fifo") or earliest objective first ("slo"). Every row
keeps its own sampling, stop strings, max_tokens and RNG; streamed text leaves after each step.
Blocking: the replica runs `step` on its model thread, over and over while `has_work`. `add`
may be called from any thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from deployments.engines.grammar_mask import masked_logits
from deployments.engines.kv_batch import KVBatch
from deployments.engines.model_runner import ModelRunner
from deployments.engines.sampling import sample_row
from deployments.engines.sequence import Sequence
from deployments.engines.waiting_queue import WaitingQueue

logger = logging.getLogger(__name__)


@dataclass
class StepReport:
    """What one step did: rows prefilled, rows in its decode step (0 if none ran), and how
    many of those were streamed."""

    prefilled: int = 0
    decoded: int = 0
    streamed: int = 0
    prefill_tokens: int = 0  # prompt tokens admitted (cached prefixes included)


class Scheduler:
    def __init__(self, runner: ModelRunner, detokenize: Callable[[list[int]], str],
                 eos_ids: set[int], max_running: int = 16,
                 max_prefill_tokens_per_step: int = 512, queue_policy: str = "fifo") -> None:
        self.runner, self.detokenize, self.eos_ids = runner, detokenize, eos_ids
        self.max_running = max_running
        self.max_prefill_tokens_per_step = max_prefill_tokens_per_step
        self.waiting: WaitingQueue[Sequence] = WaitingQueue(queue_policy)
        self.running: list[Sequence] = []
        self.batch = KVBatch()

    def add(self, sequence: Sequence) -> None:
        self.waiting.add(sequence, sequence.control.objective, sequence.control.share)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def step(self) -> StepReport:
        report = StepReport()
        self._admit(report)
        for sequence in self.running:
            sequence.obey_control()  # a caller that left or ran out of time since the last step
        self._drop_finished()
        if self.running:
            report.decoded = len(self.running)
            report.streamed = sum(s.control.on_text is not None for s in self.running)
            self._decode()
        return report

    def fail_all(self, error: Exception) -> None:
        """Ends every row, waiting or running, with `error`."""
        for sequence in self.waiting.drain():
            sequence.on_finish(error)
        for sequence in self.running:
            sequence.on_finish(error)
        self.running, self.batch = [], KVBatch()

    def _admit(self, report: StepReport) -> None:
        while len(self.running) < self.max_running:
            sequence = self.waiting.pop_if(lambda s: self._within_budget(s, report))
            if sequence is None:
                break
            sequence.obey_control()
            if sequence.finish_reason:  # gone or late already: never computed
                self._finish(sequence)
                continue
            try:
                cache, logits, cached = self.runner.prefill(sequence.prompt)
            except Exception as error:  # noqa: BLE001 - this row's own failure
                logger.exception("prefill failed for one request")
                sequence.on_finish(error)
                continue
            report.prefilled += 1
            report.prefill_tokens += len(sequence.prompt)
            sequence.cached_prompt_tokens = cached
            self._sample(sequence, logits)
            if sequence.finish_reason:  # done at its first token: no place in the batch
                self._finish(sequence)
                continue
            self.batch.join(cache, len(sequence.prompt))
            self.running.append(sequence)

    def _within_budget(self, sequence: Sequence, report: StepReport) -> bool:
        """The step's first prompt always; later ones while the prefill budget holds them."""
        return not report.prefilled or (report.prefill_tokens + len(sequence.prompt)
                                        <= self.max_prefill_tokens_per_step)

    def _decode(self) -> None:
        try:
            logits = self.runner.decode(self.batch, [s.last_token for s in self.running])
        except Exception as error:  # noqa: BLE001 - the batch's rows cannot be told apart
            logger.exception("a decode step failed; its %d rows fail", len(self.running))
            running, self.running, self.batch = self.running, [], KVBatch()
            for sequence in running:
                sequence.on_finish(error)
            return
        for row, sequence in enumerate(self.running):
            self._sample(sequence, logits[row])
        self._drop_finished()

    def _sample(self, sequence: Sequence, logits: torch.Tensor) -> None:
        if sequence.grammar is not None:
            logits = masked_logits(logits, sequence.grammar.bitmask())
        token = sample_row(logits, sequence.params, sequence.generator)
        eos = token in self.eos_ids
        text = sequence.text if eos else self.detokenize([*sequence.tokens, token])
        sequence.append(token, text, eos)
        sequence.stream_step()

    def _drop_finished(self) -> None:
        kept = [i for i, s in enumerate(self.running) if not s.finish_reason]
        for sequence in self.running:
            if sequence.finish_reason:
                self._finish(sequence)
        self.running = [self.running[i] for i in kept]
        self.batch.keep(kept)

    def _finish(self, sequence: Sequence) -> None:
        sequence.stream_step()
        sequence.on_finish(sequence.outcome())
