"""Iteration-level scheduling: requests join the running batch between decode steps and leave
it the moment they finish.

Each `step` first admits waiting requests (each prefilled alone, reusing a cached prefix, its
first token sampled at once), up to `max_running` rows and a prefill budget in tokens per step,
so a burst of new prompts cannot stall the rows already decoding for long; then runs one decode
step of every running row together. Waiting requests are admitted in the order of the queue
policy (waiting_queue.py): interactive before batch, tenants by weighted fair share, and each
tenant's by arrival ("fifo") or earliest objective first ("slo"). Every row
keeps its own sampling, stop strings, max_tokens and RNG; streamed text leaves after each step.
A request of n choices is prefilled once and joins as n rows (Sequence.fork), admitted when
its rows fit beside those running (or alone, if they never would).
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
from deployments.engines.row_logits import adjusted, token_logprob
from deployments.engines.sampling import sample_row
from deployments.engines.sequence import Sequence
from deployments.engines.token_logprobs import TokenBytes
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
                 max_prefill_tokens_per_step: int = 512, queue_policy: str = "fifo",
                 token_bytes: TokenBytes | None = None) -> None:
        self.runner, self.detokenize, self.eos_ids = runner, detokenize, eos_ids
        self.token_bytes = token_bytes or (lambda token: detokenize([token]).encode())
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
                for row in self._choices(sequence):
                    row.obey_control()
                    self._finish(row)
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
            joining = []
            for row in self._choices(sequence):
                self._sample(row, logits)
                if row.finish_reason:  # done at its first token: no place in the batch
                    self._finish(row)
                else:
                    joining.append(row)
            if joining:
                self.batch.join(cache, len(sequence.prompt), copies=len(joining))
                self.running.extend(joining)

    @staticmethod
    def _choices(sequence: Sequence) -> list[Sequence]:
        """The request's rows: itself, and a fork per further choice."""
        return [sequence, *(sequence.fork(i) for i in range(1, sequence.params.n))]

    def _within_budget(self, sequence: Sequence, report: StepReport) -> bool:
        """The step's first prompt always (if its rows fit beside those running, or none
        run); later ones while the prefill budget and the rows hold them."""
        rows_fit = len(self.running) + sequence.params.n <= self.max_running
        if not report.prefilled:
            return rows_fit or not self.running
        return rows_fit and (report.prefill_tokens + len(sequence.prompt)
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
        params = sequence.params
        logits = adjusted(logits, params, sequence.counts)
        if sequence.grammar is not None:
            logits = masked_logits(logits, sequence.grammar.bitmask())
        token = sample_row(logits, params, sequence.generator)
        logprob = (token_logprob(logits, params, token, self.token_bytes)
                   if params.logprobs else None)
        eos = token in self.eos_ids
        text = sequence.text if eos else self.detokenize([*sequence.tokens, token])
        sequence.append(token, text, eos, logprob)
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
