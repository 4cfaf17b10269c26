"""Test inputs: real speech (espeak-ng) and small real images (PIL), as bytes and base64."""

from __future__ import annotations

import base64
import io
import tempfile
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw

from tests.speech import speak

SENTENCES = ["the quick brown fox jumps over the lazy dog",
             "hello world this is a test",
             "open the door please"]


# French speech for translation: espeak's French that Whisper base hears as French (the
# language detected with a probability of about 0.8) and translates with "coffee" in it.
FRENCH = "je voudrais un café, s'il vous plaît"
FRENCH_WORDS = {"je", "vous", "café"}


@cache
def speech_wav(text: str = SENTENCES[0], voice: str | None = None) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return speak(text, Path(folder) / "clip.wav", voice=voice)


def png_image(color: tuple[int, int, int] = (200, 30, 30), size: int = 96) -> bytes:
    image = Image.new("RGB", (size, size), color)
    ImageDraw.Draw(image).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4),
                                  fill=(255 - color[0], 255 - color[1], 255 - color[2]))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def words(text: str) -> list[str]:
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace()).split()
