"""Real speech clips with known transcripts, synthesised offline by espeak-ng.

Whisper's accuracy can then be checked on every benchmark request (word error rate against the
text that was spoken), so a fast but wrong server does not look good.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

# Plain sentences of different lengths, so clips last from about 2 to 12 seconds.
SENTENCES = (
    "open the door please",
    "hello world this is a test",
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore every summer morning",
    "we measured the latency of every request and wrote the numbers to a report",
    "the train to the city leaves at seven in the morning and comes back late at night "
    "after a long day",
    "please remember to turn off the lights lock the front door and feed the cat before "
    "you leave the house for the weekend",
    "a good benchmark sends realistic traffic records every request and reports the tail "
    "latency as well as the throughput so that nobody is fooled by the average",
)
DEFAULT_WORDS_PER_MINUTE = 130  # espeak's default 175 makes Whisper base mishear short words


class EspeakMissingError(RuntimeError):
    pass


@dataclass(frozen=True)
class SpeechClip:
    text: str
    wav: bytes
    duration_s: float


def speak(text: str, words_per_minute: int = DEFAULT_WORDS_PER_MINUTE) -> SpeechClip:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EspeakMissingError("espeak-ng is needed to make speech for the transcription "
                                 "workload: apt-get install -y espeak-ng")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.wav"
        subprocess.run([exe, "-s", str(words_per_minute), "-w", str(path), text], check=True,
                       capture_output=True, timeout=60)
        wav = path.read_bytes()
    return SpeechClip(text, wav, wav_duration(wav))


def wav_duration(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav)) as reader:
        return reader.getnframes() / reader.getframerate()


def speech_clips(count: int | None = None) -> list[SpeechClip]:
    sentences = SENTENCES if count is None else [SENTENCES[i % len(SENTENCES)]
                                                 for i in range(count)]
    return [speak(text) for text in sentences]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, on lowercased words."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    if not ref:
        return float(bool(hyp))
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1] / len(ref)


def normalise_words(text: str) -> list[str]:
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace()).split()
