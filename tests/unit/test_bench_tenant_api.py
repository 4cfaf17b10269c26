"""The tenants suite's own requests against a loopback server that admits as the ingress does
(tests/unit/fake_ingress.py): emptying a tenant's requests bucket and keeping it empty until a
moment, emptying its tokens bucket with one embedding of what it holds, and waiting until the
answers tell a limit."""

from __future__ import annotations

import json
import time

import pytest

from bench.refusals import is_limits_refusal, was_admitted
from bench.tenant_api import (
    BucketKeeper,
    empty_requests_bucket,
    empty_tokens_bucket,
    texts_of_words,
    wait_for_limit,
)
from bench.tenant_figures import told_usage
from serve_app.tenants import Tenant
from tests.unit.fake_ingress import FakeIngress

KEY = "key-of-team-a-0123456789"
TEAM = Tenant(name="team-a", requests_per_minute=25)


def frozen() -> float:
    return 10.0


def test_emptying_a_bucket_takes_exactly_what_it_holds_then_stops():
    with FakeIngress(TEAM, frozen, admitted_status=403) as app:
        records = empty_requests_bucket(app.url, KEY, workers=4)
    assert sum(was_admitted(r) for r in records) == 25
    assert any(is_limits_refusal(r) for r in records)
    assert told_usage(records)["requests"] == 25  # each GET admitted counts in its usage


def test_the_keeper_keeps_the_bucket_empty_until_the_moment_named():
    with FakeIngress(TEAM, frozen, admitted_status=403) as app:
        with BucketKeeper(app.url, KEY, requests_per_s=50.0) as keeper:
            emptied = len(keeper.records)
            deadline = time.time() + 0.3
            keeper.stop_at(deadline)
            keeper.thread.join(timeout=5)
            assert not keeper.thread.is_alive()
    kept = keeper.records[emptied:]
    assert kept and all(is_limits_refusal(r) for r in kept)
    assert all(r.start <= deadline for r in kept)


def test_a_limit_is_in_force_once_answers_in_a_row_tell_it():
    with FakeIngress(TEAM, frozen, admitted_status=403) as app:
        records = wait_for_limit(app.url, KEY, 25, in_a_row=3)
        assert len(records) == 3
        with pytest.raises(TimeoutError):
            wait_for_limit(app.url, KEY, 26, in_a_row=3, timeout_s=0.3)


def test_texts_hold_the_words_asked_at_most_so_many_a_text():
    texts = texts_of_words(320, per_text=150)
    assert [len(t.split()) for t in texts] == [150, 150, 20]
    assert texts_of_words(0) == []
    assert all(len(t) <= 2048 for t in texts_of_words(10_000))  # the app's characters per text


def test_a_tokens_bucket_is_emptied_by_one_embedding_of_the_words_it_holds():
    words = Tenant(name="words", tokens_per_minute=500)
    answer = {"data": [{}, {}, {}, {}], "usage": {"prompt_tokens": 500, "total_tokens": 500}}
    with FakeIngress(words, frozen, admitted_body=answer, get_status=403) as app:
        records = empty_tokens_bucket(app.url, KEY, "clip-vit-b-32")
        sent = json.loads(app.bodies[-1])
    assert sent["model"] == "clip-vit-b-32"
    assert sum(len(text.split()) for text in sent["input"]) == 500
    assert len(records) == 2 and records[1].ok and records[1].route == "text-embedding"
    assert told_usage(records) == {"requests": 2, "prompt_tokens": 500, "completion_tokens": 0,
                                   "images": 0, "audio_seconds": 0, "no_response": 0}
