"""Only the allowed image and audio formats reach a decoder: tiny synthetic files of each kind,
told apart by their first bytes, the others refused with 415 naming their format."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image

from deployments.core.audio_media import decode_audio_bytes
from deployments.core.errors import Undecodable, UnsupportedMediaType
from deployments.core.image_media import decode_image_bytes, open_image
from deployments.core.media_formats import audio_codec_allowed, sniff_audio, sniff_image
from serve_app.http_errors import status_of


def image(fmt: str, color: tuple[int, int, int] = (200, 30, 30), **options) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def audio(container: str, codec: str, rate: int = 16_000, seconds: float = 0.25) -> bytes:
    """A short tone in `container`, encoded by `codec`."""
    out = io.BytesIO()
    with av.open(out, "w", format=container) as muxer:
        stream = muxer.add_stream(codec, rate=rate, layout="mono")
        resampler = av.AudioResampler(format=stream.codec_context.codec.audio_formats[0].name,
                                      layout="mono", rate=rate,
                                      frame_size=stream.codec_context.frame_size or None)
        tone = (np.sin(np.arange(int(rate * seconds)) / 8) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for piece in [frame, None]:
            for chunk in resampler.resample(piece):
                muxer.mux(stream.encode(chunk))
        muxer.mux(stream.encode(None))
    return out.getvalue()


@pytest.mark.parametrize(("fmt", "name"), [
    ("PNG", "PNG"), ("JPEG", "JPEG"), ("GIF", "GIF"), ("WEBP", "WEBP"), ("BMP", "BMP"),
    ("TIFF", "TIFF"), ("PPM", "PPM"), ("ICO", "ICO"),
])
def test_an_image_is_told_by_its_first_bytes(fmt, name):
    assert sniff_image(image(fmt)) == name


def test_a_psd_header_and_unknown_bytes():
    assert sniff_image(b"8BPS\x00\x01" + b"\x00" * 20) == "PSD"
    assert sniff_image(b"not an image at all") is None
    assert sniff_image(b"") is None


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_the_default_formats_open(fmt):
    assert decode_image_bytes(image(fmt)).size == (8, 8)


@pytest.mark.parametrize(("data", "name"), [
    (image("TIFF"), "TIFF"), (image("BMP"), "BMP"), (b"8BPS\x00\x01" + b"\x00" * 40, "PSD"),
    (image("PPM"), "PPM"),
])
def test_an_image_of_another_format_is_a_415_naming_it(data, name):
    with pytest.raises(UnsupportedMediaType, match=f"the image is {name}; accepted formats: "
                                                   "PNG, JPEG, WEBP, GIF") as refused:
        open_image(data)
    assert status_of(refused.value) == 415


def test_a_format_the_table_does_not_know_never_reaches_its_pillow_plugin():
    pcx = image("PCX")
    assert Image.open(io.BytesIO(pcx)).format == "PCX"  # Pillow would open it unasked
    with pytest.raises(Undecodable, match="any of PNG, JPEG, WEBP, GIF"):
        open_image(pcx)


def test_the_allow_list_is_configurable():
    assert open_image(image("BMP"), formats=["PNG", "BMP"]).format == "BMP"
    with pytest.raises(UnsupportedMediaType, match="the image is JPEG"):
        open_image(image("JPEG"), formats=["PNG"])


def test_a_gif_is_its_first_frame():
    frames = [Image.new("RGB", (8, 8), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    assert decode_image_bytes(buffer.getvalue()).getpixel((4, 4)) == (255, 0, 0)


@pytest.mark.parametrize(("container", "codec", "rate", "name"), [
    ("wav", "pcm_s16le", 16_000, "wav"), ("flac", "flac", 16_000, "flac"),
    ("mp3", "libmp3lame", 16_000, "mp3"), ("ogg", "libopus", 48_000, "ogg"),
    ("mp4", "aac", 16_000, "mp4"), ("webm", "libopus", 48_000, "webm"),
    ("aiff", "pcm_s16be", 16_000, "aiff"), ("au", "pcm_s16be", 16_000, "au"),
    ("adts", "aac", 16_000, "aac"), ("matroska", "libopus", 48_000, "matroska"),
])
def test_a_container_is_told_by_its_first_bytes(container, codec, rate, name):
    assert sniff_audio(audio(container, codec, rate)) == name


def test_an_id3_tag_is_skipped_and_one_longer_than_the_file_tells_nothing():
    frame = b"\xff\xfb\x90\x00" + b"\x00" * 40
    assert sniff_audio(b"ID3\x04\x00\x00\x00\x00\x00\x05" + b"x" * 5 + frame) == "mp3"
    assert sniff_audio(b"ID3\x04\x00\x00\x00\x00\x00\x05" + b"x" * 5 + b"fLaC") == "flac"
    assert sniff_audio(b"ID3\x04\x00\x00\x00\x01\x00\x00" + frame) is None
    assert sniff_audio(b"RIFF\x00\x00\x00\x00AVI ") == "avi"
    assert sniff_audio(b"garbage") is None


@pytest.mark.parametrize(("container", "codec", "rate"), [
    ("wav", "pcm_s16le", 16_000), ("flac", "flac", 16_000), ("mp3", "libmp3lame", 16_000),
    ("ogg", "libopus", 48_000), ("mp4", "aac", 16_000), ("webm", "libopus", 48_000),
])
def test_the_default_containers_decode(container, codec, rate):
    samples = decode_audio_bytes(audio(container, codec, rate, seconds=0.5))
    assert 0.3 < len(samples) / 16_000 < 0.7


@pytest.mark.parametrize(("container", "codec", "name"), [
    ("aiff", "pcm_s16be", "aiff"), ("au", "pcm_s16be", "au"), ("adts", "aac", "aac"),
])
def test_another_container_is_a_415_naming_it(container, codec, name):
    with pytest.raises(UnsupportedMediaType, match=f"The audio is {name}; accepted") as refused:
        decode_audio_bytes(audio(container, codec))
    assert status_of(refused.value) == 415


def test_a_narrower_allow_list_refuses_the_rest():
    with pytest.raises(UnsupportedMediaType, match="The audio is flac; accepted formats: wav"):
        decode_audio_bytes(audio("flac", "flac"), formats=["wav"])


def test_a_container_the_table_does_not_know_never_reaches_ffmpeg():
    voc = audio("voc", "pcm_u8", 8_000)
    with av.open(io.BytesIO(voc)) as probed:  # FFmpeg would open it unasked
        assert probed.format.name == "voc"
    with pytest.raises(Undecodable, match="not audio in an accepted format"):
        decode_audio_bytes(voc)


def test_an_allowed_container_with_a_codec_outside_the_list_is_a_415():
    assert audio_codec_allowed("pcm_s16le") and audio_codec_allowed("opus")
    assert not audio_codec_allowed("adpcm_ms")
    with pytest.raises(UnsupportedMediaType, match="codec is adpcm_ms"):
        decode_audio_bytes(audio("wav", "adpcm_ms"))


def test_a_wav_header_over_garbage_is_still_undecodable():
    with pytest.raises(Undecodable):
        decode_audio_bytes(b"RIFF\x00\x00\x00\x00WAVE not audio")
    with pytest.raises(Undecodable):
        decode_audio_bytes(b"RIFF....garbage" * 20)
