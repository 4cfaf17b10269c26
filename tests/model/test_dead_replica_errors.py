"""What each way Ray and Serve report a dead replica becomes: a call sent once more to another
replica, or a 503 with Retry-After; never a 500. The handle is the fake of test_calls.py; the
exceptions are Ray's own, as the installed Ray raises them."""

from __future__ import annotations

import pytest
from ray._raylet import ActorID
from ray.core.generated.common_pb2 import ActorDiedErrorContext
from ray.exceptions import (
    ActorDiedError,
    ActorUnavailableError,
    NodeDiedError,
    RayTaskError,
    WorkerCrashedError,
)
from ray.serve.exceptions import RayServeException, ReplicaUnavailableError

from deployments.core.deadline import deadline_after
from deployments.core.errors import ServeError
from serve_app.calls import REPLICA_DIED_RETRY_AFTER_S, ReplicaDied, ReplicaGroup
from serve_app.http_errors import error_headers, status_of
from serve_app.retry_rule import RetryRule
from tests.model.test_calls import FakeHandle, run


def node_died() -> ActorDiedError:
    """An actor death as Ray reports it when the actor's node died (its GCS's wording)."""
    return ActorDiedError(ActorDiedErrorContext(
        error_message="The actor died because its node has died. Node Id: 5d1e",
        actor_id=ActorID.from_random().binary(), class_name="ServeReplica:mmserve:Text"))


REPLICA_DEATHS = {
    "actor died": ActorDiedError,
    "actor died with its node": node_died,
    "actor unavailable": lambda: ActorUnavailableError("connection to the actor lost", None),
    "worker crashed": WorkerCrashedError,
    "node died": lambda: NodeDiedError("node 5d1e died"),
    "serve: replica unavailable": lambda: ReplicaUnavailableError("Text#abc"),
    "serve: upstream died": lambda: RayServeException("the replica died mid-request"),
    "wrapped in a task error": lambda: RayTaskError("embed_texts", "tb", ActorDiedError()),
}
NODE_DEATHS = {"actor died with its node", "node died"}


@pytest.mark.parametrize("name", REPLICA_DEATHS)
def test_every_replica_death_is_a_503_with_retry_after(name):
    error = ReplicaGroup("text", None).error(REPLICA_DEATHS[name]())
    assert isinstance(error, ReplicaDied)
    assert status_of(error) == 503
    assert error_headers(error)["Retry-After"] == str(REPLICA_DIED_RETRY_AFTER_S)
    assert error.node_lost == (name in NODE_DEATHS)


@pytest.mark.parametrize("name", REPLICA_DEATHS)
def test_a_cheap_idempotent_call_is_sent_once_more_whatever_killed_its_replica(name):
    handle = FakeHandle(REPLICA_DEATHS[name](), "second try")
    answer = run(ReplicaGroup("vision", handle).call("embed_texts", ["a"],
                                                     deadline=deadline_after(10),
                                                     idempotent=True))
    assert answer == "second try" and len(handle.calls) == 2


@pytest.mark.parametrize("name", sorted(set(REPLICA_DEATHS) - NODE_DEATHS))
def test_generation_whose_replica_alone_died_is_a_503_not_sent_again(name):
    handle = FakeHandle(REPLICA_DEATHS[name](), "never")
    with pytest.raises(ServeError) as caught:
        run(ReplicaGroup("text", handle).call("generate", [], None,
                                              deadline=deadline_after(10)))
    assert status_of(caught.value) == 503 and len(handle.calls) == 1


@pytest.mark.parametrize("name", sorted(NODE_DEATHS))
def test_generation_whose_node_died_is_sent_once_to_another_replica(name):
    handle = FakeHandle(REPLICA_DEATHS[name](), "answered elsewhere")
    answer = run(ReplicaGroup("text", handle).call("generate", [], None,
                                                   deadline=deadline_after(10)))
    assert answer == "answered elsewhere" and len(handle.calls) == 2


def test_a_second_node_death_is_a_503_and_retries_can_be_turned_off():
    twice = FakeHandle(node_died(), node_died())
    with pytest.raises(ServeError) as caught:
        run(ReplicaGroup("text", twice).call("generate", deadline=deadline_after(10)))
    assert status_of(caught.value) == 503 and len(twice.calls) == 2
    off = FakeHandle(node_died(), "never")
    with pytest.raises(ServeError):
        run(ReplicaGroup("text", off, RetryRule(enabled=False)).call(
            "generate", deadline=deadline_after(10)))
    assert len(off.calls) == 1
