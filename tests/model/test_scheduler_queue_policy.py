"""The transformers scheduler admits its waiting rows in the queue policy's order: by arrival
("fifo") or earliest objective first ("slo"), within the prefill budget of each step. A fake
model runner records the order of its prefills."""

from __future__ import annotations

import pytest

from deployments.core.generation import Completion, RowControl, SamplingParams
from deployments.engines.sampling import make_generator
from deployments.engines.scheduler import Scheduler
from deployments.engines.sequence import Sequence
from tests.model.test_replicas_unit import FakeRunner

ONE_TOKEN = SamplingParams(max_tokens=1, temperature=0)


class RecordingRunner(FakeRunner):
    """FakeRunner, never held, noting each prefilled prompt's first token (the row's name)."""

    def __init__(self) -> None:
        super().__init__()
        self.release.set()
        self.prefilled: list[int] = []

    def prefill(self, prompt: list[int]):
        self.prefilled.append(prompt[0])
        return super().prefill(prompt)


def scheduler(policy: str, budget: int = 512) -> Scheduler:
    return Scheduler(RecordingRunner(), lambda tokens: "", eos_ids=set(), max_running=8,
                     max_prefill_tokens_per_step=budget, queue_policy=policy)


def row(name: int, objective: float | None, length: int = 2, outcomes: list | None = None
        ) -> Sequence:
    sequence = Sequence([name] * length, ONE_TOKEN, make_generator(ONE_TOKEN),
                        RowControl(objective=objective))
    if outcomes is not None:
        sequence.on_finish = outcomes.append
    return sequence


def run(scheduler: Scheduler) -> list[int]:
    """Rows prefilled per step until the scheduler has no work."""
    per_step = []
    while scheduler.has_work():
        per_step.append(scheduler.step().prefilled)
    return per_step


@pytest.mark.parametrize(("policy", "expected"), [("slo", [3, 4, 1, 2]), ("fifo", [1, 2, 3, 4])])
def test_waiting_rows_are_admitted_in_the_policys_order(policy, expected):
    rows = scheduler(policy)
    for name, objective in [(1, 130.0), (2, None), (3, 110.0), (4, 120.0)]:
        rows.add(row(name, objective))
    assert run(rows) == [4]
    assert rows.runner.prefilled == expected


def test_the_prefill_budget_applies_to_the_most_urgent_rows_first():
    rows = scheduler("slo", budget=10)
    rows.add(row(1, 105.0, length=8))
    rows.add(row(2, 101.0, length=4))
    rows.add(row(3, 102.0, length=4))
    # 2 and 3 fill the first step's budget (8 of 10); 1 (8 more) waits for the next step.
    assert run(rows) == [2, 1]
    assert rows.runner.prefilled == [2, 3, 1]


def test_a_more_urgent_arrival_overtakes_rows_still_waiting():
    rows = scheduler("slo", budget=1)  # one prompt per step
    rows.add(row(1, 130.0))
    rows.add(row(2, 120.0))
    rows.step()
    rows.add(row(3, 105.0))
    run(rows)
    assert rows.runner.prefilled == [2, 3, 1]


def test_every_row_still_waiting_fails_with_the_error():
    rows = scheduler("slo")
    outcomes: list[Completion | Exception] = []
    for name in (1, 2):
        rows.add(row(name, 100.0 + name, outcomes=outcomes))
    error = RuntimeError("model thread died")
    rows.fail_all(error)
    assert outcomes == [error, error]
    assert not rows.has_work() and len(rows.waiting) == 0
