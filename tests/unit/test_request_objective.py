"""Each request's objective: its route's first due time after its arrival, as config says."""

from __future__ import annotations

import contextvars

import pytest

from deployments.core.config import ConfigError, Slo, load_config
from serve_app import request_objective


def in_fresh_context(function, *args):
    return contextvars.copy_context().run(function, *args)


@pytest.mark.parametrize(("path", "due_s"), [("/v1/chat/completions", 2.0),
                                             ("/v1/pipeline", 5.0),
                                             ("/v1/embeddings", 2.0),
                                             ("/v1/audio/transcriptions", 15.0)])
def test_a_request_is_due_at_arrival_plus_its_routes_first_due_time(path, due_s):
    def admitted():
        objective = request_objective.start(1000.0, Slo().for_route(path))
        return objective, request_objective.current()

    assert in_fresh_context(admitted) == (1000.0 + due_s, 1000.0 + due_s)


def test_routes_without_an_objective_carry_none():
    def admitted():
        return request_objective.start(1000.0, Slo().for_route("/v1/models"))

    assert in_fresh_context(admitted) is None
    assert request_objective.current() is None  # nothing leaks outside a request


def test_a_route_without_a_ttft_objective_is_due_at_its_whole_answer():
    slo = load_config({"slo": {"chat": {"e2e_s": 9}}}).slo
    assert slo.chat.ttft_s is None and slo.chat.first_due_s() == 9


def test_scheduling_is_fifo_or_slo_and_objectives_are_positive():
    assert load_config({"slo": {"scheduling": "slo"}}).slo.scheduling == "slo"
    with pytest.raises(ConfigError, match="slo.scheduling"):
        load_config({"slo": {"scheduling": "lifo"}})
    with pytest.raises(ConfigError, match="slo.embeddings.e2e_s"):
        load_config({"slo": {"embeddings": {"e2e_s": 0}}})
    with pytest.raises(ConfigError, match="observability.slo"):
        load_config({"observability": {"slo": {}}})
