"""Which idempotent calls whose replica died are sent again: the cheap ones only."""

from __future__ import annotations

from deployments.core.config import IngressSettings
from serve_app.retry_rule import RetryRule

RULE = RetryRule(enabled=True, max_images=4, max_audio_bytes=1000)


def test_text_embeddings_are_always_cheap():
    assert RULE.allows("embed_texts", (["a"] * 256,))


def test_image_embeddings_are_retried_up_to_the_image_bound():
    assert RULE.allows("embed_images", ([b"png"] * 4,))
    assert not RULE.allows("embed_images", ([b"png"] * 5,))


def test_a_transcription_is_retried_up_to_the_byte_bound():
    assert RULE.allows("transcribe", (b"x" * 1000, None))
    assert not RULE.allows("transcribe", (b"x" * 1001, "en"))


def test_the_pipelines_labels_are_one_image():
    assert RULE.allows("classify", (b"png", ["cat"]))
    assert not RetryRule(max_images=0).allows("classify", (b"png", ["cat"]))


def test_generation_and_unknown_methods_are_never_retried():
    for method in ("generate", "stream", "ready", "something_new"):
        assert not RULE.allows(method, ([],))


def test_nothing_is_retried_when_retries_are_off():
    assert not RetryRule(enabled=False).allows("embed_texts", (["a"],))


def test_the_rule_follows_the_ingress_settings():
    settings = IngressSettings(retry_idempotent=True, retry_max_images=1,
                               retry_max_audio_bytes=10)
    rule = RetryRule.from_settings(settings)
    assert rule.allows("embed_images", ([b"a"],)) and not rule.allows("embed_images",
                                                                       ([b"a", b"b"],))
    assert not rule.allows("transcribe", (b"x" * 11, None))
    assert RetryRule() == RetryRule.from_settings(IngressSettings())


def test_any_call_whose_node_died_may_be_sent_again_unless_retries_are_off():
    assert RetryRule().allows("generate", ([], None), node_lost=True)
    assert RetryRule(max_audio_bytes=1).allows("transcribe", (b"xx",), node_lost=True)
    assert not RetryRule().allows("generate", ([], None))
    assert not RetryRule(enabled=False).allows("generate", ([], None), node_lost=True)
