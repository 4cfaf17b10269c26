"""Property-based fuzzing of every route with a fixed seed: whatever a client sends, the answer
keeps the error contract (bench/fuzz_checks.py: no 5xx but 503/504, an OpenAI-shaped JSON error
for every 4xx, a Retry-After with every 429/503, streams that end with [DONE]), no request breaks
the connection, and every replica is still the same process afterwards, serving good requests.

The strategies (bench/fuzz_strategies.py) draw schema-shaped bodies with values at and past
every cap of the test app, wrong types, NaN, huge integers, lone surrogates, bad base64,
hostile media, broken multipart, deep nesting, raw bytes, unknown routes and methods. The long
run is `python -m bench fuzz`.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz_checks import problems, send
from bench.fuzz_strategies import (
    FuzzRequest,
    Limits,
    chat_requests,
    embedding_requests,
    pipeline_requests,
    raw_body_requests,
    route_requests,
    transcription_requests,
    with_headers,
)
from deployments.core.config import load_config
from tests.conftest import TEST_ARGS
from tests.integration.test_bad_input import good_requests_still_work

pytestmark = pytest.mark.integration
LIMITS = Limits.from_config(load_config(TEST_ARGS))
# Examples per family: enough to reach every branch of its strategy, few enough that the
# whole file runs in about a minute on two cores; `python -m bench fuzz` is the long run.
FAMILIES: dict[str, tuple[st.SearchStrategy[FuzzRequest], int]] = {
    "chat": (chat_requests(LIMITS), 80),
    "embeddings": (embedding_requests(LIMITS), 60),
    "transcriptions": (transcription_requests(LIMITS), 60),
    "pipeline": (pipeline_requests(LIMITS), 50),
    "routes-and-methods": (route_requests(), 60),
    "raw-bodies": (raw_body_requests(LIMITS), 60),
}
FIXED_SEED = settings(derandomize=True, database=None, deadline=None, print_blob=False,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_fuzzed_requests_keep_the_error_contract(family, client, replicas):
    strategy, examples = FAMILIES[family]
    pids_before = replicas.pids()

    @settings(FIXED_SEED, max_examples=examples)
    @given(with_headers(strategy))
    def answers_by_the_contract(request: FuzzRequest) -> None:
        response = send(client, request)
        found = problems(request, response)
        assert not found, f"{found}\nrequest: {request.describe()}\n" \
                          f"response: {response.status} {response.body[:300]!r}"

    answers_by_the_contract()
    assert replicas.pids() == pids_before, "a replica died or was replaced during the fuzz"
    good_requests_still_work(client)
