"""Images from request bytes: only the allowed formats opened (deployments/core/media_formats.py),
the header read and its pixel count checked before any pixel is decoded, then decoded to RGB no
larger than the model can see. Pillow only (no torch), so the replica decodes on its own threads
whatever engine serves it; errors are core errors (TooLarge: HTTP 413, UnsupportedMediaType:
HTTP 415, Undecodable: HTTP 422).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from deployments.core.errors import TooLarge, Undecodable, UnsupportedMediaType
from deployments.core.media_formats import DEFAULT_IMAGE_FORMATS, sniff_image

DEFAULT_MAX_IMAGE_PIXELS = 16_777_216  # the default of vision.max_image_pixels
# Past this aspect ratio a model that center-crops the square of the short side sees none of
# the extra length; cropping it before preprocessing keeps a 16M x 1 image from being resized
# to 3.7G pixels (224 on the short side), and leaves margins wider than any resize kernel.
KEEP_ASPECT_RATIO = 2


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
               formats: Sequence[str] = DEFAULT_IMAGE_FORMATS) -> Image.Image:
    """The image opened lazily (only its header read) by the plugins of `formats` alone (Pillow's
    names: PNG, JPEG, ...), its pixel count checked.

    Raises UnsupportedMediaType for an image of a format known but not allowed, TooLarge past
    max_pixels and Undecodable for bytes none of the allowed formats can read.
    """
    if not data:
        raise Undecodable("the image is empty")
    check_image_format(data, formats)
    try:
        image = Image.open(io.BytesIO(data), formats=list(formats))
    except Image.DecompressionBombError:  # PIL's own cap, at twice Image.MAX_IMAGE_PIXELS
        raise TooLarge(f"the image has more than {max_pixels} pixels") from None
    except MemoryError:
        raise
    except Image.UnidentifiedImageError:
        raise Undecodable(f"the image could not be decoded as any of {', '.join(formats)}"
                          ) from None
    except Exception as exc:  # PIL's plugins raise many types for corrupt headers
        raise Undecodable(f"the image could not be decoded: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise TooLarge(f"the image is {width} x {height} pixels; the limit is "
                       f"{max_pixels} pixels")
    return image


def check_image_format(data: bytes, formats: Sequence[str]) -> None:
    """Raises UnsupportedMediaType, naming it, when `data` starts as an image of a format that
    is not in `formats`."""
    sniffed = sniff_image(data)
    if sniffed is not None and sniffed not in formats:
        raise UnsupportedMediaType(f"the image is {sniffed}; accepted formats: "
                                   f"{', '.join(formats)}")


def decode_image_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                       input_side: int | None = None,
                       formats: Sequence[str] = DEFAULT_IMAGE_FORMATS) -> Image.Image:
    """An RGB PIL image from PNG/JPEG/WebP/GIF bytes (`formats`), its size checked before
    decoding.

    Raises what open_image raises (before any pixel is decoded) and Undecodable for
    undecodable bytes. For `input_side`, see load_pixels.
    """
    return load_pixels(open_image(data, max_pixels, formats), input_side)


def load_pixels(image: Image.Image, input_side: int | None = None) -> Image.Image:
    """Decodes an image from open_image to RGB; Undecodable if its data is corrupt.

    With `input_side` (that of a model which resizes the short side to it, then center-crops
    a square: the vision engine's input_side), only what the model can see is kept: JPEGs are
    decoded at 1/2, 1/4 or 1/8 scale by libjpeg while the short side stays >= input_side,
    and any image is center-cropped to an aspect ratio of at most 2:1 and shrunk by a whole
    factor to a short side between input_side and twice it.
    """
    try:
        if input_side is not None:
            image.draft("RGB", (input_side, input_side))  # JPEG only; ignored by other formats
        image.load()
        rgb = image if image.mode == "RGB" else image.convert("RGB")  # no copy when RGB
    except MemoryError:
        raise
    except Exception as exc:  # truncated data, bad chunks: OSError, SyntaxError, ValueError...
        raise Undecodable(f"the image could not be decoded: {exc}") from None
    return rgb if input_side is None else fit_to_input(rgb, input_side)


def fit_to_input(image: Image.Image, input_side: int) -> Image.Image:
    """The center of `image` at aspect ratio <= 2:1, reduced while its short side stays
    >= input_side: what a resize-short-side-then-center-crop model needs, and no more."""
    width, height = image.size
    short = min(width, height)
    keep = KEEP_ASPECT_RATIO * short
    if width > keep or height > keep:
        left, top = max(0, (width - keep) // 2), max(0, (height - keep) // 2)
        image = image.crop((left, top, left + min(width, keep), top + min(height, keep)))
    factor = short // input_side
    return image.reduce(factor) if factor >= 2 else image
