"""FasterWhisperEngine against real (espeak-ng) speech: decoding, batching, long audio.

Needs the Whisper base model at $MMSERVE_MODEL_DIR/whisper-base (CTranslate2 format) and the
espeak-ng binary; neither is skipped when missing, the tests fail and say what to install.
"""

from __future__ import annotations

import os
import re
import string
from pathlib import Path

import numpy as np
import pytest

from deployments.core.audio_media import decode_audio_bytes
from deployments.core.errors import Undecodable
from deployments.engines.whisper import FasterWhisperEngine
from tests.speech import encode_as, speak

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "hello world this is a test",
    "open the door please",
]
SAMPLE_RATE = 16000


def _model_dir() -> Path:
    root = os.environ.get("MMSERVE_MODEL_DIR", "~/.cache/mmserve/models")
    return Path(root).expanduser() / "whisper-base"


def _words(text: str) -> list[str]:
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return re.split(r"\s+", text.strip())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over words, divided by the reference length."""
    ref, hyp = _words(reference), _words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / len(ref)


@pytest.fixture(scope="module")
def engine() -> FasterWhisperEngine:
    path = _model_dir()
    assert (path / "model.bin").is_file(), (
        f"Whisper base model not found at {path}; set MMSERVE_MODEL_DIR to the folder holding "
        "whisper-base (CTranslate2 format)."
    )
    return FasterWhisperEngine(str(path), compute_type="int8", cpu_threads=1)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """WAV bytes of each sentence in SENTENCES."""
    folder = tmp_path_factory.mktemp("speech")
    return [speak(text, folder / f"{i}.wav") for i, text in enumerate(SENTENCES)]


def test_decode_formats_agree_on_duration(clips: list[bytes]) -> None:
    durations = {}
    for fmt in ("wav", "flac", "mp3", "ogg"):
        audio = decode_audio_bytes(encode_as(clips[0], fmt))
        assert audio.dtype == np.float32 and audio.ndim == 1
        durations[fmt] = len(audio) / SAMPLE_RATE
    assert durations["wav"] > 1.0
    for fmt, seconds in durations.items():
        assert seconds == pytest.approx(durations["wav"], abs=0.1), (fmt, durations)


@pytest.mark.parametrize(
    "data",
    [b"", b"definitely not audio " * 64, bytes(range(256)) * 16],
    ids=["empty", "text", "binary"],
)
def test_undecodable_bytes_raise(data: bytes) -> None:
    with pytest.raises(Undecodable):
        decode_audio_bytes(data)


def test_truncated_wav_header_raises(clips: list[bytes]) -> None:
    with pytest.raises(Undecodable):
        decode_audio_bytes(clips[0][:40])


def test_batch_of_three_is_one_model_call(engine: FasterWhisperEngine, clips: list[bytes]) -> None:
    audios = [decode_audio_bytes(clip) for clip in clips]
    calls = engine.model_calls
    results = engine.transcribe_batch(audios)
    assert engine.model_calls == calls + 1
    assert len(results) == len(SENTENCES)
    for sentence, audio, result in zip(SENTENCES, audios, results, strict=True):
        assert word_error_rate(sentence, result.text) <= 0.3, (sentence, result.text)
        assert result.language == "en"
        assert 0.0 < result.language_probability <= 1.0
        assert result.duration == pytest.approx(len(audio) / SAMPLE_RATE)
        assert result.segments, result
        for segment in result.segments:
            assert 0.0 <= segment.start < segment.end <= result.duration + 0.5, segment
            assert segment.text == segment.text.strip() and segment.text


def test_given_language_is_kept(engine: FasterWhisperEngine, clips: list[bytes]) -> None:
    (result,) = engine.transcribe_batch([decode_audio_bytes(clips[1])], languages=["en"])
    assert (result.language, result.language_probability) == ("en", 1.0)
    assert word_error_rate(SENTENCES[1], result.text) <= 0.3, result.text


def test_unknown_language_is_rejected(engine: FasterWhisperEngine, clips: list[bytes]) -> None:
    with pytest.raises(ValueError):
        engine.transcribe_batch([decode_audio_bytes(clips[1])], languages=["klingon"])


def test_audio_longer_than_30s(engine: FasterWhisperEngine, clips: list[bytes]) -> None:
    first, second, third = (decode_audio_bytes(clip) for clip in clips)
    gap = np.zeros(SAMPLE_RATE * 32 - len(first), dtype=np.float32)  # second starts at 32 s
    long = np.concatenate([first, gap, second, np.zeros(SAMPLE_RATE * 4, np.float32), third])
    assert 38.0 < len(long) / SAMPLE_RATE < 45.0
    (result,) = engine.transcribe_batch([long])
    late = [s for s in result.segments if s.start >= 30.0]
    assert late, result.segments
    assert all(s.end <= result.duration + 0.5 for s in result.segments)
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts)
    assert word_error_rate(" ".join(SENTENCES), result.text) <= 0.3, result.text


def test_silence_gives_no_text(engine: FasterWhisperEngine) -> None:
    (result,) = engine.transcribe_batch([np.zeros(SAMPLE_RATE * 3, dtype=np.float32)])
    assert result.text == "" and result.segments == []


def test_a_looping_decode_is_recognised_and_speech_is_not() -> None:
    from deployments.engines.whisper import _looping

    assert _looping(["1." + "0." * 100])
    assert not _looping([SENTENCES[0]])
