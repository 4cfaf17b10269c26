"""FasterWhisperEngine's per-request task and word timestamps against real (espeak-ng) speech:
translation to English, words timed inside their audio, and requests asking for different
things sharing one batch (one model call).

Needs the Whisper base model at $MMSERVE_MODEL_DIR/whisper-base and espeak-ng, as
tests/model/test_whisper_engine.py.
"""

from __future__ import annotations

import pytest

from deployments.core.audio_media import decode_audio_bytes
from deployments.engines.whisper import FasterWhisperEngine
from tests.media import FRENCH, FRENCH_WORDS, SENTENCES, speech_wav, words
from tests.model.test_whisper_engine import _model_dir, word_error_rate


@pytest.fixture(scope="module")
def engine() -> FasterWhisperEngine:
    return FasterWhisperEngine(str(_model_dir()), compute_type="int8", cpu_threads=1)


@pytest.fixture(scope="module")
def english():
    return decode_audio_bytes(speech_wav(SENTENCES[0]))


@pytest.fixture(scope="module")
def french():
    return decode_audio_bytes(speech_wav(FRENCH, voice="fr"))


def test_words_are_timed_in_order_inside_the_audio_and_spell_the_text(engine, english):
    (result,) = engine.transcribe_batch([english], ["en"], word_timestamps=[True])
    assert word_error_rate(SENTENCES[0], result.text) <= 0.3, result.text
    assert words(" ".join(w.word for w in result.words)) == words(result.text)
    for word in result.words:
        assert 0.0 <= word.start <= word.end <= result.duration + 0.5, word
        assert 0.0 <= word.probability <= 1.0
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)


def test_segments_carry_whispers_verbose_fields(engine, english):
    (result,) = engine.transcribe_batch([english], ["en"])
    assert result.words == []
    for segment in result.segments:
        assert segment.tokens and segment.seek == 0 and segment.temperature == 0.0
        assert segment.avg_logprob <= 0.0 and segment.compression_ratio > 0.0
        assert 0.0 <= segment.no_speech_prob <= 1.0


def test_french_speech_is_translated_to_english(engine, french):
    heard, translated = engine.transcribe_batch([french, french],
                                                tasks=["transcribe", "translate"])
    assert heard.language == translated.language == "fr"
    assert "café" in words(heard.text), heard.text
    assert "coffee" in words(translated.text), translated.text
    assert not FRENCH_WORDS & set(words(translated.text)), translated.text


def test_requests_asking_different_things_share_one_model_call(engine, english, french):
    alone = engine.transcribe_batch([english], ["en"], word_timestamps=[True])[0]
    calls = engine.model_calls
    timed, plain, translated = engine.transcribe_batch(
        [english, english, french], ["en", "en", None],
        tasks=["transcribe", "transcribe", "translate"], word_timestamps=[True, False, False])
    assert engine.model_calls == calls + 1
    assert timed.text == plain.text  # the same audio and prompt in one generate
    assert [w.word for w in timed.words] == [w.word for w in alone.words]
    assert [w.start for w in timed.words] == pytest.approx([w.start for w in alone.words],
                                                           abs=0.1)
    assert plain.words == [] and translated.words == []
    assert "coffee" in words(translated.text)
