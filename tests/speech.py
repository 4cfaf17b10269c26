"""Real speech clips for tests, made offline with espeak-ng and re-encoded with PyAV.

Synthetic sine waves say nothing about whether a speech model works; espeak-ng gives short,
clearly pronounced English that Whisper transcribes reliably, and it needs no network.
PyAV (already a faster-whisper dependency) re-encodes the WAV as flac/mp3/ogg, so the only
system tool the tests need is espeak-ng.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import av

# container format, codec, sample rate (None: keep the source rate)
_FORMATS: dict[str, tuple[str, str, int | None]] = {
    "wav": ("wav", "pcm_s16le", None),
    "flac": ("flac", "flac", None),
    "mp3": ("mp3", "libmp3lame", None),
    "ogg": ("ogg", "libopus", 48000),
}


class EspeakMissingError(RuntimeError):
    """espeak-ng is not installed, so no speech can be made."""


def speak(text: str, path: str | Path, speed: int = 130, voice: str | None = None) -> bytes:
    """Synthesize `text` to a WAV file at `path` with espeak-ng and return its bytes.

    `speed` is in words per minute; espeak's default 175 makes Whisper base mishear short words
    ("door" -> "dot"), 120-130 is transcribed reliably. `voice` is espeak's language voice
    ("fr"); None: its default, English.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EspeakMissingError(
            "espeak-ng is required to generate test speech: apt-get install -y espeak-ng"
        )
    subprocess.run(
        [exe, "-s", str(speed), *(["-v", voice] if voice else []), "-w", str(path), text],
        check=True, capture_output=True, timeout=60,
    )
    return Path(path).read_bytes()


def encode_as(wav_bytes: bytes, fmt: str) -> bytes:
    """Re-encode WAV bytes as `fmt` (wav, flac, mp3 or ogg/opus), mono, using PyAV only."""
    container, codec, rate = _FORMATS[fmt]
    out = io.BytesIO()
    with av.open(io.BytesIO(wav_bytes)) as src, av.open(out, "w", format=container) as dst:
        source = src.streams.audio[0]
        stream = dst.add_stream(codec, rate=rate or source.rate, layout="mono")
        resampler = av.AudioResampler(
            format=stream.codec_context.codec.audio_formats[0].name,
            layout="mono",
            rate=stream.rate,
            frame_size=stream.codec_context.frame_size or None,
        )
        for frame in [*src.decode(source), None]:
            for chunk in resampler.resample(frame):
                dst.mux(stream.encode(chunk))
        dst.mux(stream.encode(None))
    return out.getvalue()
