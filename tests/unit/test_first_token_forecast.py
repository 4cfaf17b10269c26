"""The text replica's forecast of a request's time to first token, on a fake clock: requests
ahead in the engine's order (by arrival, or earliest objective first), the fit of ttft as
a + b * position learned from streams' first tokens and forgetting old ones, whole completions
counted until a stream behind them shows they were served, and admission: under "slo" a
request predicted past its objective turned away with the overshoot as Retry-After; under
"fifo" nothing turned away; before a first token, everything admitted."""

from __future__ import annotations

import pytest

from deployments.core.errors import SloUnreachable
from deployments.core.fair_share import ANONYMOUS, Share
from deployments.replicas.first_token_forecast import FirstTokenForecast
from deployments.replicas.latency_model import LatencyModel
from serve_app.http_errors import error_headers, status_of
from tests.unit.fake_clock import FakeClock

T0 = 1_000.0


def ttft(position: int) -> float:
    return 0.1 + 0.5 * position


class Recording(LatencyModel):
    """A latency model that keeps the (position, seconds) of each first token it is taught."""

    def __init__(self, forgetting: float = 0.95) -> None:
        super().__init__(forgetting)
        self.seen: list[tuple[int, float]] = []

    def observe(self, size: int, seconds: float) -> None:
        self.seen.append((size, pytest.approx(seconds)))
        super().observe(size, seconds)


def taught(model: LatencyModel | None = None) -> LatencyModel:
    model = model if model is not None else Recording()
    for position in (1, 2, 3):
        model.observe(position, ttft(position))
    if isinstance(model, Recording):
        model.seen.clear()
    return model


def forecast(by_objective: bool = False, policy: str = "slo",
             model: LatencyModel | None = None, by_class: bool = False,
             fair: bool = False) -> tuple[FirstTokenForecast, FakeClock, list[str]]:
    clock, events = FakeClock(T0), []
    return (FirstTokenForecast(by_objective, policy, model if model is not None else taught(),
                               on_event=events.append, clock=clock, serves_by_class=by_class,
                               serves_fair_shares=fair), clock, events)


class Call:
    """One request the test holds in the engine, as TextGenerator's generate or stream does.
    Keep it referenced: a call collected unfinished leaves the engine unserved."""

    def __init__(self, forecast: FirstTokenForecast, objective: float | None = None,
                 streamed: bool = True, share: Share = ANONYMOUS) -> None:
        self._context = forecast.track(objective, streamed, share)
        self._first_token = self._context.__enter__()

    def first_token(self) -> None:
        self._first_token.came()

    def finish(self) -> None:
        self._context.__exit__(None, None, None)

    def fail(self) -> None:
        error = RuntimeError("cancelled")
        assert not self._context.__exit__(RuntimeError, error, None)


def test_before_any_first_token_it_predicts_nothing_and_admits_everything():
    first_tokens, _, events = forecast(model=LatencyModel())
    held = Call(first_tokens, objective=T0 - 5)  # already past its objective
    assert held and first_tokens.predict(T0 - 5) is None
    assert events == []


def test_it_learns_the_first_token_alone_and_the_cost_of_each_request_ahead():
    model = Recording()
    first_tokens, clock, _ = forecast(model=model)
    alone = Call(first_tokens)
    clock.now += ttft(1)
    alone.first_token()
    alone.first_token()  # a stream's later outputs teach nothing
    alone.finish()
    queued = [Call(first_tokens) for _ in range(3)]
    for position, call in enumerate(queued, start=1):
        clock.now = T0 + ttft(1) + ttft(position)
        call.first_token()
    assert model.seen == [(1, ttft(1)), (1, ttft(1)), (2, ttft(2)), (3, ttft(3))]
    assert first_tokens.predict(None) == pytest.approx(ttft(1))
    held = [Call(first_tokens) for _ in range(3)]
    assert len(held) == 3 and first_tokens.predict(None) == pytest.approx(ttft(4))


def test_under_earliest_objective_first_only_earlier_objectives_are_ahead():
    by_objective, _, _ = forecast(by_objective=True)
    by_arrival, _, _ = forecast(by_objective=False)
    held = [Call(first_tokens, objective) for first_tokens in (by_objective, by_arrival)
            for objective in (T0 + 10, T0 + 30, None)]
    assert len(held) == 6
    assert by_objective.predict(T0 + 20) == pytest.approx(ttft(2))
    assert by_objective.predict(T0 + 5) == pytest.approx(ttft(1))
    assert by_objective.predict(T0 + 10) == pytest.approx(ttft(2))  # ties: arrival order
    assert by_objective.predict(None) == pytest.approx(ttft(4))
    assert by_arrival.predict(T0 + 5) == pytest.approx(ttft(4))


def test_a_later_request_with_an_earlier_objective_goes_ahead_of_those_waiting():
    model = taught()
    first_tokens, clock, _ = forecast(by_objective=True, model=model)
    relaxed = Call(first_tokens, objective=T0 + 30)
    urgent = Call(first_tokens, objective=T0 + 10)
    clock.now = T0 + 1
    urgent.first_token()
    clock.now = T0 + 2
    relaxed.first_token()
    assert model.seen == [(1, 1.0), (2, 2.0)]


def test_a_request_leaving_before_its_first_token_moves_those_behind_it_forward():
    model = taught()
    first_tokens, clock, _ = forecast(model=model)
    gone, waiting = Call(first_tokens), Call(first_tokens)
    gone.fail()
    clock.now = T0 + ttft(1)
    waiting.first_token()
    assert model.seen == [(1, ttft(1))]
    assert first_tokens.predict(None) == pytest.approx(ttft(1))


def test_a_whole_completion_waits_until_a_stream_behind_it_gets_its_first_token():
    model = taught()
    first_tokens, clock, _ = forecast(model=model)
    whole, stream = Call(first_tokens, streamed=False), Call(first_tokens)
    assert whole and first_tokens.predict(None) == pytest.approx(ttft(3))
    clock.now = T0 + ttft(2)
    stream.first_token()  # the engine served the whole completion before it
    assert model.seen == [(2, ttft(2))]
    assert first_tokens.predict(None) == pytest.approx(ttft(1))


def test_a_whole_completion_served_after_a_stream_stays_until_it_finishes():
    model = taught()
    first_tokens, clock, _ = forecast(by_objective=True, model=model)
    whole = Call(first_tokens, objective=T0 + 30, streamed=False)
    stream = Call(first_tokens, objective=T0 + 10)
    clock.now = T0 + ttft(1)
    stream.first_token()
    assert model.seen == [(1, ttft(1))]
    assert first_tokens.predict(T0 + 40) == pytest.approx(ttft(2))
    behind = Call(first_tokens, objective=T0 + 40)
    whole.finish()  # served: the one behind it keeps its place
    clock.now += ttft(2)
    behind.first_token()
    assert model.seen == [(1, ttft(1)), (2, ttft(2))]


def test_under_slo_a_request_predicted_past_its_objective_is_turned_away():
    first_tokens, _, events = forecast()
    held = [Call(first_tokens) for _ in range(4)]
    with pytest.raises(SloUnreachable) as refused:
        Call(first_tokens, objective=T0 + 0.5)  # ttft(5) = 2.6 s: 2.1 s late
    error = refused.value
    assert error.retry_after_s == pytest.approx(2.1)
    assert error.predicted_wait_s == pytest.approx(ttft(5)) and error.objective_in_s == 0.5
    assert status_of(error) == 429 and error_headers(error) == {"Retry-After": "3"}
    assert events == ["slo_rejected"]
    assert first_tokens.predict(None) == pytest.approx(ttft(5))  # the refused one never went in
    held.append(Call(first_tokens, objective=T0 + 3))  # one predicted to make it goes in
    assert events == ["slo_rejected"]


def test_retry_after_is_at_least_a_second():
    first_tokens, _, _ = forecast()
    ahead = Call(first_tokens)
    with pytest.raises(SloUnreachable) as refused:
        Call(first_tokens, objective=T0 + ttft(2) - 0.1)
    assert refused.value.retry_after_s == 1.0
    ahead.finish()


def test_with_nothing_waiting_ahead_a_request_is_admitted_whatever_the_forecast():
    """Turning it away would free nothing, and its first token is what teaches the model
    again after a slow one (a first call that built a model, say)."""
    model = taught()
    first_tokens, clock, events = forecast(model=model)
    alone = Call(first_tokens, objective=T0 + ttft(1) - 0.5)
    assert events == []
    clock.now = T0 + 0.2
    alone.first_token()
    assert model.seen == [(1, 0.2)]
    ahead = Call(first_tokens)
    with pytest.raises(SloUnreachable):  # one waits ahead of it: the forecast counts
        Call(first_tokens, objective=clock.now + 0.1)
    ahead.finish()


def test_under_fifo_nothing_is_turned_away_but_it_learns_and_counts_predicted_misses():
    model = taught()
    first_tokens, clock, events = forecast(policy="fifo", model=model)
    ahead = Call(first_tokens)
    late = Call(first_tokens, objective=T0 - 1)
    assert events == ["slo_predicted_miss"]
    clock.now = T0 + 2
    late.first_token()  # second in line under fifo
    assert model.seen == [(2, 2.0)]
    first_tokens.set_policy("slo")
    with pytest.raises(SloUnreachable):
        Call(first_tokens, objective=T0)
    assert events == ["slo_predicted_miss", "slo_rejected"]
    ahead.finish()


def test_it_forgets_old_first_tokens():
    first_tokens, clock, _ = forecast(model=LatencyModel(forgetting=0.8))
    for seconds in [0.2] * 30 + [1.0] * 30:
        call = Call(first_tokens)
        clock.now += seconds
        call.first_token()
        call.finish()
    assert first_tokens.predict(None) == pytest.approx(1.0, rel=1e-2)


def test_only_fifo_and_slo_are_policies():
    with pytest.raises(ValueError):
        FirstTokenForecast(False, "lifo")
    with pytest.raises(ValueError):
        forecast()[0].set_policy("lifo")


A, B = Share(tenant="a"), Share(tenant="b")
NIGHTLY = Share("batch", "nightly")


def test_an_engine_serving_by_class_puts_no_batch_request_ahead_of_an_interactive_one():
    by_class, _, _ = forecast(by_class=True)
    by_arrival, _, _ = forecast(by_class=False)
    held = [Call(first_tokens, share=share) for first_tokens in (by_class, by_arrival)
            for share in (NIGHTLY, NIGHTLY, NIGHTLY, A)]
    assert len(held) == 8
    assert by_class.predict(None, A) == pytest.approx(ttft(2))  # a's one request ahead
    assert by_class.predict(None, NIGHTLY) == pytest.approx(ttft(5))
    assert by_arrival.predict(None, A) == pytest.approx(ttft(5))


def test_an_interactive_request_learns_from_its_place_ahead_of_the_batch_ones():
    model = taught()
    first_tokens, clock, _ = forecast(model=model, by_class=True)
    earlier = [Call(first_tokens, share=NIGHTLY) for _ in range(3)]
    interactive = Call(first_tokens, share=A)
    later = [Call(first_tokens, share=NIGHTLY) for _ in range(2)]
    clock.now = T0 + 1
    interactive.first_token()
    clock.now = T0 + 2
    earlier[0].first_token()
    assert len(later) == 2 and model.seen == [(1, 1.0), (2, 2.0)]


def test_under_slo_batch_is_turned_away_first():
    first_tokens, _, events = forecast(by_class=True)
    held = [Call(first_tokens, share=NIGHTLY) for _ in range(4)]
    held.append(Call(first_tokens, objective=T0 + 1.5, share=A))  # ttft(1): admitted
    with pytest.raises(SloUnreachable):
        Call(first_tokens, objective=T0 + 1.5, share=NIGHTLY)  # ttft(6): turned away
    assert events == ["slo_rejected"]


def test_with_fair_shares_a_tenant_counts_its_share_of_anothers_flood_not_all_of_it():
    first_tokens, _, events = forecast(by_class=True, fair=True)
    flood = [Call(first_tokens, share=A) for _ in range(8)]
    assert len(flood) == 8
    assert first_tokens.predict(None, B) == pytest.approx(ttft(2))  # a's first, then b's
    assert first_tokens.predict(None, A) == pytest.approx(ttft(9))
    steady = Call(first_tokens, objective=T0 + 1.5, share=B)  # admitted: ttft(2) = 1.1 s
    with pytest.raises(SloUnreachable):
        Call(first_tokens, objective=T0 + 1.5, share=A)
    assert steady and events == ["slo_rejected"]


def test_with_fair_shares_the_requests_of_one_tenant_keep_the_engines_order():
    first_tokens, _, _ = forecast(by_objective=True, by_class=True, fair=True)
    held = [Call(first_tokens, objective, share=A) for objective in (T0 + 10, T0 + 30)]
    assert len(held) == 2
    assert first_tokens.predict(T0 + 20, A) == pytest.approx(ttft(2))
    assert first_tokens.predict(T0 + 5, A) == pytest.approx(ttft(1))
