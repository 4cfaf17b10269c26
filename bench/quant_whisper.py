"""Whisper precision on this CPU: faster-whisper (CTranslate2) compute_type float32 vs int8.

Quality: word error rate on fixed English sentences spoken by espeak-ng (-s 130, clear speech)
against their text. Speed: real-time factor (seconds of compute per second of audio; lower is
faster) of the engine's batched transcription, the path the audio deployment runs, best of a
few rounds taking turns between the variants.

    python -m bench.quant_whisper [--threads 1] [--compute-types float32 int8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

from bench.quant_common import best_interleaved, uptime, write_results
from deployments.core.audio_media import SAMPLE_RATE, decode_audio_bytes
from deployments.core.models import default_model_dir, resolve
from deployments.engines.whisper import FasterWhisperEngine

# No numbers: Whisper writes "seven" as "7", which is not a recognition error.
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please open the window before the meeting starts.",
    "The train to the city leaves early in the morning.",
    "She bought three apples and a loaf of bread at the market.",
    "Our team finished the project two weeks ahead of schedule.",
    "Turn left at the next corner and walk straight to the park.",
    "The weather today is sunny with a light breeze from the west.",
    "He reads a new book every month and writes short reviews.",
    "Fresh water from the mountain spring tastes cold and clean.",
    "The museum is closed on Mondays but open late on Fridays.",
]


def speak(text: str, path: Path, speed: int = 130) -> bytes:
    """A WAV of `text` spoken by espeak-ng (apt-get install espeak-ng)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit("espeak-ng is required: apt-get install -y espeak-ng")
    subprocess.run([exe, "-s", str(speed), "-w", str(path), text], check=True,
                   capture_output=True, timeout=60)
    return path.read_bytes()


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def edit_distance(a: list[str], b: list[str]) -> int:
    previous = list(range(len(b) + 1))
    for i, word in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (word != other)))
        previous = current
    return previous[-1]


def word_error_rate(hypotheses: list[str], references: list[str]) -> float:
    errors = sum(edit_distance(words(r), words(h)) for h, r in zip(hypotheses, references))
    return errors / sum(len(words(r)) for r in references)


def audio_seconds_per_s(engine: FasterWhisperEngine, audios: list, seconds: float) -> float:
    """Seconds of speech transcribed per second of compute, for one batch."""
    started = time.perf_counter()
    engine.transcribe_batch(audios, ["en"] * len(audios))
    return seconds / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quant_whisper")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compute-types", nargs="+", default=["float32", "int8"])
    parser.add_argument("--rounds", type=int, default=3, help="speed: best of, interleaved")
    opts = parser.parse_args(argv)
    load = uptime()
    with tempfile.TemporaryDirectory() as tmp:
        audios = [decode_audio_bytes(speak(s, Path(tmp) / f"{i}.wav"))
                  for i, s in enumerate(SENTENCES)]
    seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    model = str(resolve("whisper-base", default_model_dir()))
    engines = {ct: FasterWhisperEngine(model, ct, opts.threads) for ct in opts.compute_types}
    english = ["en"] * len(audios)
    texts = {ct: [r.text for r in e.transcribe_batch(audios, english)]
             for ct, e in engines.items()}
    speed = best_interleaved({ct: partial(audio_seconds_per_s, e, audios, seconds)
                              for ct, e in engines.items()}, opts.rounds)
    first = opts.compute_types[0]
    rows = [{"compute_type": ct, "WER": word_error_rate(texts[ct], SENTENCES),
             "real-time factor": 1 / speed[ct], "audio s per s": speed[ct],
             "speed vs first": speed[ct] / speed[first]} for ct in opts.compute_types]
    write_results(
        "quant_whisper", f"Whisper base precision, faster-whisper ({len(SENTENCES)} espeak-ng "
        f"clips, {seconds:.0f} s of speech, one batch, {opts.threads} thread)",
        ["compute_type", "WER", "real-time factor", "audio s per s", "speed vs first"], rows,
        ["WER against the sentences' own text after lower-casing and dropping punctuation. "
         "int8: int8 weights and int8 matrix products (activations quantized on the fly), "
         "other layers float32; on CPU it is the same as int8_float32."], load)


if __name__ == "__main__":
    main()
