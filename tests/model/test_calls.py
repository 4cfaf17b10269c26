"""ReplicaGroup: deadlines, the retry of idempotent calls whose replica died, and the error each
failure becomes. The handle is a small fake: these are unit tests of the mapping, the live
behaviour is proven in tests/system/test_replica_faults.py."""

from __future__ import annotations

import asyncio
import time

import pytest
from ray.exceptions import ActorDiedError, RayTaskError
from ray.serve.exceptions import BackPressureError

from deployments.core.call_protocol import CallContext, CompletionReply, EmbeddingsReply
from deployments.core.deadline import deadline_after
from deployments.core.errors import DeadlineExceeded, ServeError, Undecodable
from serve_app import request_tenant, request_timing
from serve_app.calls import REPLICA_DIED_RETRY_AFTER_S, ReplicaGroup
from serve_app.canary_split import CANARY, MAIN, CanarySplit, Variant
from serve_app.http_errors import status_of
from serve_app.retry_rule import RetryRule
from serve_app.tenants import Tenant


class FakeResponse:
    def __init__(self, outcome):
        self.outcome = outcome
        self.cancelled = False

    def cancel(self):
        self.cancelled = True

    def __await__(self):
        return self._resolve().__await__()

    async def _resolve(self):
        if isinstance(self.outcome, float):
            await asyncio.sleep(self.outcome)
            return "late"
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class FakeHandle:
    """Each .method.remote(...) call takes the next outcome and records its arguments."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls, self.responses = [], []

    def __getattr__(self, method):
        handle = self

        class Method:
            def remote(self, *args):
                handle.calls.append((method, args))
                response = FakeResponse(handle.outcomes.pop(0))
                handle.responses.append(response)
                return response

        return Method()


def run(coroutine):
    return asyncio.run(coroutine)


def test_the_call_context_travels_as_the_last_argument():
    handle = FakeHandle("ok")
    deadline = deadline_after(10)
    assert run(ReplicaGroup("vision", handle).call("embed_texts", ["a"], deadline=deadline)) == "ok"
    assert handle.calls == [("embed_texts", (["a"], CallContext(deadline, timed=False)))]


def test_the_call_context_carries_the_tenant_and_the_reply_is_metered_for_it():
    handle = FakeHandle(CompletionReply("Hi.", 9, 3, "stop"))

    async def call():
        account = request_tenant.start(Tenant(name="team-b", priority="batch"))
        await ReplicaGroup("text", handle).call("generate", [], None, deadline=None)
        return account

    account = run(call())
    context = handle.calls[0][1][-1]
    assert (context.tenant, context.priority) == ("team-b", "batch")
    assert account.usage.tokens == 12


def test_a_timed_request_asks_for_stages_and_adds_the_replys_to_its_timing():
    stages = [("model", time.time(), 0.25)]
    handle = FakeHandle(EmbeddingsReply([], stages=stages))

    async def timed_call():
        with request_timing.timed_request() as timing:
            await ReplicaGroup("vision", handle).call("embed_texts", ["a"],
                                                      deadline=deadline_after(10))
        return timing

    timing = run(timed_call())
    assert handle.calls[0][1][-1].timed
    [call] = timing.calls
    assert (call.group, call.stages) == ("vision", stages)
    assert dict(timing.entries())["vision-model"] == 0.25


def test_a_passed_deadline_is_a_504_and_cancels_the_call():
    handle = FakeHandle(5.0)
    with pytest.raises(ServeError) as caught:
        run(ReplicaGroup("text", handle).call("generate", deadline=deadline_after(0.05)))
    assert status_of(caught.value) == 504
    assert handle.responses[0].cancelled


def test_an_idempotent_call_is_retried_once_when_its_replica_died():
    handle = FakeHandle(ActorDiedError(), "second try")
    group = ReplicaGroup("vision", handle)
    assert run(group.call("embed_texts", deadline=deadline_after(10), idempotent=True)) \
        == "second try"
    assert len(handle.calls) == 2


def test_a_second_death_or_a_non_idempotent_call_gives_503_with_retry_after():
    for handle, idempotent in ((FakeHandle(ActorDiedError(), ActorDiedError()), True),
                               (FakeHandle(ActorDiedError()), False)):
        with pytest.raises(ServeError) as caught:
            run(ReplicaGroup("vision", handle).call("embed_texts", deadline=deadline_after(10),
                                                    idempotent=idempotent))
        assert status_of(caught.value) == 503
        assert caught.value.retry_after_s == REPLICA_DIED_RETRY_AFTER_S
        assert len(handle.calls) == (2 if idempotent else 1)


def test_an_expensive_idempotent_call_is_not_sent_to_the_next_replica():
    handle = FakeHandle(ActorDiedError(), "never")
    group = ReplicaGroup("audio", handle, RetryRule(max_audio_bytes=10))
    with pytest.raises(ServeError) as caught:
        run(group.call("transcribe", b"x" * 11, None, deadline=deadline_after(10),
                       idempotent=True))
    assert status_of(caught.value) == 503 and len(handle.calls) == 1
    cheap = FakeHandle(ActorDiedError(), "second try")
    assert run(ReplicaGroup("audio", cheap, RetryRule(max_audio_bytes=10)).call(
        "transcribe", b"x" * 10, None, deadline=deadline_after(10), idempotent=True)) \
        == "second try"


def test_no_retry_once_the_deadline_has_passed():
    handle = FakeHandle(ActorDiedError(), "never")
    deadline = time.time() - 1
    with pytest.raises(ServeError) as caught:
        run(ReplicaGroup("audio", handle)._call_once("transcribe", (), deadline))
    assert status_of(caught.value) in (503, 504)


def test_backpressure_is_429_with_a_retry_after_from_the_drain_rate():
    group = ReplicaGroup("audio", FakeHandle())
    for _ in range(20):  # 20 completions in the 10 s window: 2 per second
        group.load.started()
        group.load.finished()
    for _ in range(8):  # 8 in flight drain in 4 s
        group.load.started()
    error = group.error(BackPressureError(num_queued_requests=9, max_queued_requests=8))
    assert (status_of(error), error.retry_after_s) == (429, 4)
    assert group.load.overloaded()


def test_a_client_error_raised_in_a_replica_keeps_its_status():
    wrapped = RayTaskError("transcribe", "traceback", Undecodable("not audio", "file"))
    error = ReplicaGroup("audio", FakeHandle()).error(wrapped)
    assert (status_of(error), error.message, error.param) == (422, "not audio", "file")
    dropped = ReplicaGroup("audio", FakeHandle()).error(DeadlineExceeded("transcription"))
    assert status_of(dropped) == 504


def test_anything_else_is_a_500_that_names_only_the_type():
    error = ReplicaGroup("text", FakeHandle()).error(RuntimeError("secret detail"))
    assert status_of(error) == 500 and "secret" not in error.message


def test_a_split_group_sends_each_call_to_the_variant_its_draw_chose():
    main, canary = FakeHandle("main", "main"), FakeHandle("canary")
    draws = iter([0.5, 0.05, 0.9])
    split = CanarySplit(Variant(MAIN, "v1", main), Variant(CANARY, "v2", canary), 0.1,
                        lambda: next(draws))
    group = ReplicaGroup("text", main, split=split, version="v1")
    answers = [run(group.call("generate", deadline=deadline_after(10))) for _ in range(3)]
    assert answers == ["main", "canary", "main"]
    assert len(main.calls) == 2 and len(canary.calls) == 1


def test_an_idempotent_call_whose_canary_replica_died_draws_again():
    main, canary = FakeHandle(EmbeddingsReply([])), FakeHandle(ActorDiedError())
    draws = iter([0.0, 0.9])
    split = CanarySplit(Variant(MAIN, "", main), Variant(CANARY, "v2", canary), 0.5,
                        lambda: next(draws))
    group = ReplicaGroup("vision", main, split=split)
    reply = run(group.call("embed_texts", ["a"], deadline=deadline_after(10), idempotent=True))
    assert isinstance(reply, EmbeddingsReply)
    assert len(canary.calls) == 1 and len(main.calls) == 1
