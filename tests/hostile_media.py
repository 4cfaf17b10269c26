"""Small files that declare or expand to far more than they hold: the worst cases of the caps.

Each is a few hundred KB at most, yet decoded without a cap it would take gigabytes: a PNG
whose header declares 100,000 x 100,000 pixels, a WAV at 8 Hz lasting 10 hours (576 M samples
once resampled to 16 kHz), a FLAC of hours that states no duration at all.
"""

from __future__ import annotations

import io
import struct
import wave
import zlib

import av
import numpy as np
from PIL import Image


def png_declaring(width: int, height: int) -> bytes:
    """A PNG with a real header for width x height and almost no pixel data: any attempt to
    decode it fails as truncated, so only a header check can answer "too large"."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def jpeg(width: int, height: int, quality: int = 90) -> bytes:
    """A real JPEG of a smooth gradient (compresses well, decodes to width x height)."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    pixels = np.stack(np.broadcast_arrays(x + 0 * y, y + 0 * x, (x + y) / 2), axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png(width: int, height: int, color: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def silent_wav(seconds: float, rate: int) -> bytes:
    """A real 16-bit mono WAV of silence; at a low `rate` hours fit in a few hundred KB."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


def flac_without_duration(samples: np.ndarray, rate: int) -> bytes:
    """FLAC of int16 mono samples whose STREAMINFO says "total samples unknown" (0), as a
    streaming encoder writes it: the container then states no duration at all."""
    data = bytearray(flac(samples, rate))
    # "fLaC", a 4-byte block header, then STREAMINFO: its bytes 10..17 hold the sample rate
    # (20 bits), channels (3), bits per sample (5) and total samples (36, the low bits).
    start = 4 + 4 + 10
    packed = int.from_bytes(data[start:start + 8], "big") & ~((1 << 36) - 1)
    data[start:start + 8] = packed.to_bytes(8, "big")
    return bytes(data)


def flac(samples: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        stream.codec_context.format = "s16"
        frame = av.AudioFrame.from_ndarray(samples.astype(np.int16).reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return out.getvalue()


def wav_samples(wav_bytes: bytes) -> tuple[np.ndarray, int]:
    """The int16 mono samples and rate of a 16-bit WAV (espeak-ng's output)."""
    with wave.open(io.BytesIO(wav_bytes)) as source:
        frames = source.readframes(source.getnframes())
        return np.frombuffer(frames, dtype="<i2"), source.getframerate()
