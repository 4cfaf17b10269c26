"""The call protocol's types cross Ray pickled, and the response cache keeps a reply's payload:
both must give back the same reply (stages left out of the payload)."""

from __future__ import annotations

import json
import pickle

import pytest

from deployments.core.call_protocol import (
    CallContext,
    CompletionReply,
    LabelsReply,
    ReadyReply,
    StreamEnd,
    TokenDelta,
    TranscriptReply,
)
from deployments.core.fair_share import Share

STAGES = [("model", 1_700_000_000.0, 0.25), ("replica", 1_700_000_000.25, 0.01)]
REPLIES = [
    CompletionReply("Paris.", 9, 2, "stop", stages=STAGES),
    LabelsReply([{"label": "cat", "score": 0.9}], stages=STAGES),
    TranscriptReply("hello", "en", 0.99, 1.5,
                    [{"id": 0, "start": 0.0, "end": 1.5, "text": "hello"}], stages=STAGES),
    ReadyReply(stages=STAGES),
]


@pytest.mark.parametrize("value", [*REPLIES, CallContext(123.5, timed=True, objective=120.0),
                                   CallContext(tenant="team-b", priority="batch", weight=2.0),
                                   TokenDelta("hi"),
                                   StreamEnd(9, 2, "length", stages=STAGES)])
def test_every_type_survives_pickling(value):
    assert pickle.loads(pickle.dumps(value)) == value


@pytest.mark.parametrize("reply", REPLIES)
def test_a_payload_through_json_gives_the_reply_back_without_its_stages(reply):
    payload = json.loads(json.dumps(reply.payload()))
    assert "stages" not in payload
    again = type(reply).from_payload(payload)
    assert again.stages == [] and again.payload() == reply.payload()


def test_a_calls_share_is_its_tenants_class_and_weight():
    share = CallContext(tenant="team-b", priority="batch", weight=2.0).share
    assert (share.priority, share.tenant, share.weight, share.rank) == ("batch", "team-b", 2.0, 1)
    assert CallContext().share == Share()  # anonymous: interactive, weight 1
