"""Per-request caps, each checked before the expensive part: unit tests of every check.

The ingress checks (serve_app/limits.py), the seed range and JSON depth (parse_json), and the
media decoders, which read an image's size and an audio's duration before decoding them whole.
"""

from __future__ import annotations

import io
import json
import tracemalloc

import numpy as np
import pytest
import torch
from faster_whisper.audio import decode_audio

from deployments.core.audio_media import decode_audio_bytes
from deployments.core.config import AppConfig
from deployments.core.errors import ServeError, TooLarge, Undecodable
from deployments.core.image_media import decode_image_bytes, open_image
from deployments.core.models import model_path
from deployments.engines.open_clip_engine import OpenClipEngine
from serve_app import limits
from serve_app.http import parse_json
from serve_app.http_errors import status_of
from serve_app.protocol import (
    MAX_SEED,
    ChatCompletionRequest,
    EmbeddingRequest,
    PipelineRequest,
)
from tests.hostile_media import (
    flac,
    flac_without_duration,
    jpeg,
    png,
    png_declaring,
    silent_wav,
    wav_samples,
)
from tests.media import speech_wav
from tests.speech import encode_as

CONFIG = AppConfig()
TEXT_MODEL = CONFIG.vision.engine.served_model_name
IMAGE_MODEL = TEXT_MODEL + "-image"


def assert_rejected(check, status: int, param: str | None, fragment: str = "") -> ServeError:
    with pytest.raises(ServeError) as caught:
        check()
    assert (status_of(caught.value), caught.value.param) == (status, param), caught.value
    assert fragment in caught.value.message
    return caught.value


def chat(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})


# -- the ingress's checks -------------------------------------------------------------------


def test_chat_prompt_characters_count_every_message_together():
    half = CONFIG.text.max_prompt_chars // 2
    fits = chat(messages=[{"role": "system", "content": "a" * half},
                          {"role": "user", "content": [{"type": "text", "text": "b" * half}]}])
    limits.check_chat(fits, CONFIG)
    over = chat(messages=[{"role": "system", "content": "a" * half},
                          {"role": "user", "content": "b" * (half + 1)}])
    assert_rejected(lambda: limits.check_chat(over, CONFIG), 400, "messages", "characters")


def test_chat_max_tokens_past_the_limit_is_400():
    limit = CONFIG.text.max_tokens_limit
    limits.check_chat(chat(max_tokens=limit), CONFIG)
    assert_rejected(lambda: limits.check_chat(chat(max_completion_tokens=limit + 1), CONFIG),
                    400, "max_tokens")


def test_embeddings_count_inputs_of_either_model():
    most = CONFIG.vision.max_inputs
    limits.check_embeddings(EmbeddingRequest(model=TEXT_MODEL, input=["x"] * most), CONFIG)
    for model in (TEXT_MODEL, IMAGE_MODEL):
        body = EmbeddingRequest(model=model, input=["x"] * (most + 1))
        assert_rejected(lambda b=body: limits.check_embeddings(b, CONFIG), 400, "input",
                        str(most))


def test_embeddings_text_length_names_the_input():
    longest = CONFIG.vision.max_text_chars
    texts = ["a cat", "a" * longest, "a dog", "a" * (longest + 1)]
    assert_rejected(lambda: limits.check_embeddings(
        EmbeddingRequest(model=TEXT_MODEL, input=texts), CONFIG), 400, "input[3]")
    single = EmbeddingRequest(model=TEXT_MODEL, input="a" * (longest + 1))
    assert_rejected(lambda: limits.check_embeddings(single, CONFIG), 400, "input[0]")


def test_image_inputs_are_not_held_to_the_text_length():
    image = EmbeddingRequest(model=IMAGE_MODEL, input=["A" * (CONFIG.vision.max_text_chars * 4)])
    limits.check_embeddings(image, CONFIG)


def test_pipeline_labels_count_and_length():
    vision = CONFIG.vision
    fits = PipelineRequest(labels=["a" * vision.max_label_chars] * vision.max_labels)
    limits.check_pipeline(fits, CONFIG)
    many = PipelineRequest(labels=["cat"] * (vision.max_labels + 1))
    assert_rejected(lambda: limits.check_pipeline(many, CONFIG), 400, "labels")
    long = PipelineRequest(labels=["cat", "dog", "x" * (vision.max_label_chars + 1)])
    assert_rejected(lambda: limits.check_pipeline(long, CONFIG), 400, "labels[2]")


def test_pipeline_prompt_characters_and_max_tokens():
    text = CONFIG.text
    limits.check_pipeline(PipelineRequest(prompt="p" * text.max_prompt_chars), CONFIG)
    over = PipelineRequest(prompt="p" * (text.max_prompt_chars + 1))
    assert_rejected(lambda: limits.check_pipeline(over, CONFIG), 400, "prompt")
    tokens = PipelineRequest(prompt="hi", max_tokens=text.max_tokens_limit + 1)
    assert_rejected(lambda: limits.check_pipeline(tokens, CONFIG), 400, "max_tokens")


# -- the seed range -------------------------------------------------------------------------


@pytest.mark.parametrize("model, body", [
    (ChatCompletionRequest, {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    (PipelineRequest, {"prompt": "hi"})])
@pytest.mark.parametrize("seed", [2**80, 2**63, -1])
def test_a_seed_no_engine_takes_is_400(model, body, seed):
    sent = json.dumps({**body, "seed": seed}).encode()
    assert_rejected(lambda: parse_json(sent, model), 400, "seed")


def test_the_largest_seed_is_one_torch_takes():
    assert chat(seed=MAX_SEED).seed == MAX_SEED
    assert torch.Generator().manual_seed(MAX_SEED).initial_seed() == MAX_SEED


# -- JSON nesting ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000,
                                  b'{"a":' * 100_000 + b"1" + b"}" * 100_000])
def test_a_body_nested_100000_deep_is_a_400(body):
    assert_rejected(lambda: parse_json(body, ChatCompletionRequest), 400, None, "nested deeper")


def nested(depth: int) -> bytes:
    """A chat body whose deepest value sits at `depth` levels (the body itself is level 1)."""
    value: object = "x"
    for _ in range(depth - 3):
        value = [value]
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": value}]}).encode()


def test_nesting_is_counted_against_max_depth():
    with pytest.raises(ServeError) as within:  # within the depth: validation has its say
        parse_json(nested(8), ChatCompletionRequest, max_depth=8)
    assert within.value.param and within.value.param.startswith("messages")
    assert_rejected(lambda: parse_json(nested(9), ChatCompletionRequest, max_depth=8),
                    400, None, "nested deeper than 8 levels")


def test_real_requests_pass_the_default_depth():
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text",
                                                                     "text": "hi"}]}],
            "stream_options": {"include_usage": True}}
    assert parse_json(json.dumps(body).encode(), ChatCompletionRequest).messages[0].text() == "hi"


# -- images: size from the header, decoded no larger than the model needs -------------------


def test_an_image_declaring_too_many_pixels_is_refused_from_its_header():
    # Both PNGs hold no pixel data to speak of: decoding either would fail as truncated,
    # so "too large" can only come from the header check. The first is past PIL's own
    # decompression-bomb limit, the second only past ours.
    for declared in (png_declaring(100_000, 100_000), png_declaring(5_000, 5_000)):
        with pytest.raises(TooLarge):
            decode_image_bytes(declared, max_pixels=16_777_216)


def test_an_image_at_the_pixel_cap_is_decoded():
    image = decode_image_bytes(png(64, 32), max_pixels=64 * 32)
    assert image.size == (64, 32) and image.mode == "RGB"
    with pytest.raises(TooLarge, match="64 x 32"):
        open_image(png(64, 32), max_pixels=64 * 32 - 1)


def test_undecodable_images_stay_decode_errors():
    for data in (b"", b"not an image", png(32, 32)[:60], png_declaring(64, 64)):
        with pytest.raises(Undecodable):
            decode_image_bytes(data, input_side=224)


def test_a_large_jpeg_is_decoded_at_reduced_scale():
    image = decode_image_bytes(jpeg(4000, 3000), input_side=224)
    # libjpeg's 1/8 scale gives 500 x 375, still >= 224 on the short side
    assert image.size == (500, 375)


def test_a_png_is_shrunk_by_a_whole_factor_keeping_the_short_side():
    assert decode_image_bytes(png(1000, 700), input_side=224).size == (334, 234)
    assert decode_image_bytes(png(300, 250), input_side=224).size == (300, 250)


def test_an_extreme_aspect_ratio_keeps_only_what_the_center_crop_can_see():
    # Resized to 224 on its short side, 16,000 x 1 would become 3.6 M x 224 pixels.
    assert decode_image_bytes(png(16_000, 1), input_side=224).size == (2, 1)
    assert decode_image_bytes(png(300, 1_200), input_side=224).size == (300, 600)


@pytest.fixture(scope="module")
def clip(model_dir) -> OpenClipEngine:
    checkpoint = model_path("clip-vit-b-32", model_dir) / "open_clip_model.safetensors"
    return OpenClipEngine("ViT-B-32", str(checkpoint))


def test_the_engine_reports_its_center_crop_side(clip):
    assert clip.input_side == 224


@pytest.mark.parametrize("data", [jpeg(224, 224), jpeg(640, 480), jpeg(3000, 2000),
                                  png(1200, 300), png(2000, 1500)],
                         ids=["jpeg-224", "jpeg-640x480", "jpeg-3000x2000", "png-4:1",
                              "png-2000x1500"])
def test_reduced_decoding_embeds_as_the_full_image(clip, data):
    full = decode_image_bytes(data)
    reduced = decode_image_bytes(data, input_side=clip.input_side)
    assert reduced.size[0] * reduced.size[1] <= full.size[0] * full.size[1]
    a, b = clip.embed_images([full, reduced])
    assert float(a @ b) > 0.99


# -- audio: duration from the container, decoding stopped at the cap ------------------------


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "ogg"])
def test_decoding_matches_faster_whisper(fmt):
    data = encode_as(speech_wav(), fmt)
    ours = decode_audio_bytes(data, 16000, max_duration_s=60)
    np.testing.assert_allclose(ours, decode_audio(io.BytesIO(data), sampling_rate=16000),
                               atol=1e-6)
    assert ours.dtype == np.float32 and 2.0 < len(ours) / 16000 < 10.0


def test_speech_longer_than_the_cap_is_refused_from_its_header():
    with pytest.raises(TooLarge, match=r"lasts 4 s; the limit is 2 s"):
        decode_audio_bytes(speech_wav(), 16000, max_duration_s=2)


def test_speech_without_a_stated_duration_is_stopped_at_the_cap():
    samples, rate = wav_samples(speech_wav())
    data = flac_without_duration(samples, rate)
    with pytest.raises(TooLarge, match="more than 2 s"):
        decode_audio_bytes(data, 16000, max_duration_s=2)
    np.testing.assert_allclose(decode_audio_bytes(data, 16000, max_duration_s=10),
                               decode_audio_bytes(flac(samples, rate), 16000), atol=1e-6)


def test_ten_hours_declared_in_half_a_megabyte_are_refused_at_once():
    ten_hours = silent_wav(10 * 3600, rate=8)  # 576 KB; 576 M samples at 16 kHz
    with traced_peak() as peak:
        with pytest.raises(TooLarge, match="lasts 36000 s"):
            decode_audio_bytes(ten_hours, 16000, max_duration_s=600)
    assert peak() < 8 * 2**20


def test_hours_with_no_stated_duration_are_decoded_only_up_to_the_cap():
    hours = flac_without_duration(np.zeros(8 * 10 * 3600, dtype=np.int16), rate=8)
    with traced_peak() as peak:
        with pytest.raises(TooLarge, match="more than 600 s"):
            decode_audio_bytes(hours, 16000, max_duration_s=600)
    # the cap's worth of s16 samples (600 s x 16 kHz x 2 B = 19 MB) and little else; the
    # whole file would be 576 M samples, over 1 GB
    assert peak() < 48 * 2**20


def test_undecodable_audio_stays_a_decode_error():
    for data in (b"", b"RIFF....garbage" * 20, speech_wav()[:40]):
        with pytest.raises(Undecodable):
            decode_audio_bytes(data, 16000, max_duration_s=600)


class traced_peak:
    """Peak bytes Python and numpy allocated inside the block (tracemalloc)."""

    def __enter__(self):
        tracemalloc.start()
        tracemalloc.reset_peak()
        return lambda: self.peak

    def __exit__(self, *exc_info):
        self.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return False
