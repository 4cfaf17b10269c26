"""Media for the fuzzer: a few real images and clips, and hostile ones that are cheap to send but
expensive to decode if nothing checks them first (a PNG whose header claims 10^10 pixels, a WAV
that claims hours, compressed silence longer than the duration cap).

Each is built once per process; the fuzz strategies pick among them by name.
"""

from __future__ import annotations

import base64
import io
import math
import struct
import zlib
from dataclasses import dataclass
from functools import cache

from PIL import Image

from bench.images import synthetic_image
from bench.speech import speak

SPOKEN = "hello world"


@dataclass(frozen=True)
class MediaLimits:
    max_image_pixels: int = 16_777_216
    max_duration_s: float = 600.0


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@cache
def images(limits: MediaLimits = MediaLimits()) -> dict[str, bytes]:
    """Real images in several formats and sizes, a truncated one, and pixel bombs."""
    png = synthetic_image(1, 64, "PNG")
    side = math.isqrt(limits.max_image_pixels)
    return {
        "png": png, "jpeg": synthetic_image(2, 96, "JPEG"), "gif": _convert(png, "GIF"),
        "bmp": _convert(png, "BMP"), "webp": _convert(png, "WEBP"),
        "tiny-png": _solid_png(1, 1), "wide-png": _solid_png(8192, 1),
        "truncated-png": png[: len(png) // 2],
        "at-pixel-cap-png": _solid_png(side, limits.max_image_pixels // side),
        "over-pixel-cap-png": _solid_png(side + 1, side + 1),
        "header-bomb-png": header_bomb_png(100_000, 100_000),
    }


@cache
def audio(limits: MediaLimits = MediaLimits()) -> dict[str, bytes]:
    """Real speech, a truncated and a lying WAV, and silence just over the duration cap."""
    wav = speak(SPOKEN).wav
    return {
        "wav": wav, "truncated-wav": wav[: len(wav) // 3], "header-only-wav": wav[:44],
        "lying-wav": lying_wav(seconds_claimed=36_000),
        "over-duration-ogg": silence_ogg(limits.max_duration_s + 1),
    }


def _convert(data: bytes, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buffer, format=fmt)
    return buffer.getvalue()


def _solid_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def header_bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header for width x height greyscale pixels, with almost no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 1024)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels)
            + _png_chunk(b"IEND", b""))


def lying_wav(seconds_claimed: float, rate: int = 16_000, seconds_sent: float = 0.5) -> bytes:
    """A 16-bit mono WAV whose header claims `seconds_claimed` but that holds far less."""
    claimed = int(seconds_claimed * rate * 2)
    data = b"\x00\x00" * int(rate * seconds_sent)
    header = (b"RIFF" + struct.pack("<I", 36 + claimed) + b"WAVE" + b"fmt "
              + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
              + b"data" + struct.pack("<I", claimed))
    return header + data


def silence_ogg(seconds: float, rate: int = 8_000) -> bytes:
    """`seconds` of silence as Ogg/Opus: a few kilobytes, however long it lasts."""
    import av
    import numpy as np

    out = io.BytesIO()
    with av.open(out, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48_000, layout="mono")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000,
                                      frame_size=stream.codec_context.frame_size or 960)
        chunk = np.zeros((1, rate), dtype=np.int16)  # one second at a time
        for second in range(math.ceil(seconds)):
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, second * rate
            for piece in resampler.resample(frame):
                container.mux(stream.encode(piece))
        for piece in resampler.resample(None):
            container.mux(stream.encode(piece))
        container.mux(stream.encode(None))
    return out.getvalue()
