"""Deadlines inside the replicas, called through their handles as the ingress calls them
(the call's context last, with its absolute deadline): work already late is refused before the
model, and a text row whose deadline passes while it decodes fails with a 504 at its next
step."""

from __future__ import annotations

import time

import pytest

from deployments.core.call_protocol import CallContext
from deployments.core.errors import DeadlineExceeded
from deployments.core.generation import SamplingParams
from tests.conftest import deployment_handle
from tests.media import speech_wav

pytestmark = pytest.mark.integration
STORY = [{"role": "user", "content": "Tell me a long story about a dragon."}]
LONG = SamplingParams(max_tokens=400, temperature=0)


def stats(deployment: str) -> dict:
    return deployment_handle(deployment).batch_stats.remote().result()


def items(deployment: str, method: str) -> int:
    return stats(deployment)["methods"].get(method, {}).get("items", 0)


def failure(response) -> BaseException:
    with pytest.raises(Exception) as raised:
        response.result()
    return getattr(raised.value, "cause", raised.value)


@pytest.mark.parametrize("deployment, method, call", [
    ("TextGenerator", "prefill", lambda h, late: h.generate.remote(STORY, LONG, late)),
    ("ImageEmbedder", "embed_text", lambda h, late: h.embed_texts.remote(["a cat"], late)),
    ("SpeechTranscriber", "transcribe",
     lambda h, late: h.transcribe.remote(speech_wav(), None, late))])
def test_a_call_already_past_its_deadline_never_reaches_the_model(app_url, deployment, method,
                                                                    call):
    before = items(deployment, method)
    error = failure(call(deployment_handle(deployment), CallContext(time.time() - 1)))
    assert isinstance(error, DeadlineExceeded)
    assert items(deployment, method) == before


def test_a_row_whose_deadline_passes_mid_decode_fails_and_the_replica_serves_on(app_url):
    text = deployment_handle("TextGenerator")
    aborted_before = stats("TextGenerator")["events"].get("deadline_aborted", 0)
    error = failure(text.generate.remote(STORY, LONG, CallContext(time.time() + 1.5)))
    assert isinstance(error, DeadlineExceeded)
    assert stats("TextGenerator")["events"].get("deadline_aborted", 0) == aborted_before + 1
    short = SamplingParams(max_tokens=4, temperature=0)
    assert text.generate.remote(STORY, short, CallContext(time.time() + 60)).result(
        ).completion_tokens
