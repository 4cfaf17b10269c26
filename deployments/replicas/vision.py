"""CLIP deployment: batched image and text embeddings, zero-shot image classification."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from ray import serve

from deployments.core.call_protocol import NO_CONTEXT, CallContext, EmbeddingsReply, LabelsReply
from deployments.core.caps import check_labels
from deployments.core.config import VisionSettings
from deployments.core.deadline import check
from deployments.core.errors import InvalidRequest, TooLarge, Undecodable, UnsupportedMediaType
from deployments.core.image_media import decode_image_bytes, open_image
from deployments.engines import load_vision_engine
from deployments.engines.open_clip_engine import zero_shot_scores
from deployments.engines.vision_base import VisionEngine
from deployments.replicas.batcher import DynamicBatcher, all_or_none, run_valid_rows
from deployments.replicas.label_cache import LabelCache
from deployments.replicas.replica_base import BatchedReplica
from deployments.replicas.timed_calls import reports_timing

_LABEL_CACHE_SIZE = 4096


@serve.deployment
class ImageEmbedder(BatchedReplica):
    def __init__(self, settings: dict[str, Any], model_dir: str,
                 metrics_enabled: bool = True) -> None:
        super().__init__(VisionSettings.model_validate(settings), metrics_enabled)
        self.engine: VisionEngine = load_vision_engine(self.settings.engine, model_dir)
        self._label_vectors = LabelCache[np.ndarray](_LABEL_CACHE_SIZE)
        self.choices = getattr(self.engine, "choices", {})
        self.image_batches = DynamicBatcher(self._embed_image_batch,
                                           **self.stats.batcher_hooks("embed_image"))
        self.text_batches = DynamicBatcher(self._embed_text_batch,
                                          **self.stats.batcher_hooks("embed_text"))
        self.batchers = [self.image_batches, self.text_batches]

    @reports_timing
    async def embed_images(self, images: list[bytes],
                           ctx: CallContext = NO_CONTEXT) -> EmbeddingsReply:
        return EmbeddingsReply(await self._image_vectors(images, ctx))

    @reports_timing
    async def embed_texts(self, texts: list[str],
                          ctx: CallContext = NO_CONTEXT) -> EmbeddingsReply:
        return EmbeddingsReply(await self._text_vectors(texts, ctx))

    @reports_timing
    async def classify(self, image: bytes, labels: list[str],
                       ctx: CallContext = NO_CONTEXT) -> LabelsReply:
        """Labels with zero-shot probabilities, most likely first."""
        check_labels(labels, self.settings.max_labels, self.settings.max_label_chars)
        await asyncio.to_thread(_check_image_header, image, self.settings.max_image_pixels,
                                self.settings.image_formats)
        image_vector, label_vectors = await all_or_none(
            [self._image_vectors([image], ctx), self._label_embeddings(labels, ctx)])
        scores = zero_shot_scores(image_vector[0], np.stack(label_vectors))
        ranked = sorted(zip(labels, scores), key=lambda pair: -pair[1])
        return LabelsReply([{"label": label, "score": float(score)} for label, score in ranked])

    async def _image_vectors(self, images: list[bytes], ctx: CallContext) -> list[np.ndarray]:
        check(ctx.deadline, "the embeddings")
        decoded = await asyncio.to_thread(_decode_all, images, self.settings.max_image_pixels,
                                          self.engine.input_side, self.settings.image_formats)
        return await all_or_none(self.image_batches(image, ctx.deadline, ctx.objective, ctx.share)
                                 for image in decoded)

    async def _text_vectors(self, texts: list[str], ctx: CallContext) -> list[np.ndarray]:
        check(ctx.deadline, "the embeddings")
        return await all_or_none(self.text_batches(text, ctx.deadline, ctx.objective, ctx.share)
                                 for text in texts)

    async def _label_embeddings(self, labels: list[str],
                                ctx: CallContext = NO_CONTEXT) -> list[np.ndarray]:
        async def embed(missing: list[str]) -> list[np.ndarray]:
            return await self._text_vectors([f"a photo of a {label}." for label in missing], ctx)
        return await self._label_vectors.vectors(labels, embed)

    async def _embed_image_batch(self, images: list) -> list[np.ndarray]:
        with self.stats.model_call("embed_image", len(images)):
            return list(await self.run_model(self.engine.embed_images, images))

    async def _embed_text_batch(self, texts: list[str]) -> list[np.ndarray | Exception]:
        return await run_valid_rows(texts, _check_text, self._embed_valid_texts)

    async def _embed_valid_texts(self, texts: list[str]) -> list[np.ndarray]:
        with self.stats.model_call("embed_text", len(texts)):
            return list(await self.run_model(self.engine.embed_texts, texts))


def _check_text(text: Any) -> None:
    if not isinstance(text, str):
        raise InvalidRequest(f"a text input must be a string, not {type(text).__name__}",
                             "input")


_MEDIA_ERRORS = (TooLarge, Undecodable, UnsupportedMediaType)


def _check_image_header(image: bytes, max_pixels: int, formats: list[str]) -> None:
    """The pipeline's image: format and size from its header, before any label is embedded."""
    try:
        open_image(image, max_pixels, formats)
    except _MEDIA_ERRORS as exc:
        raise type(exc)(f"image: {exc}", "image") from None


def _decode_all(images: list[bytes], max_pixels: int, input_side: int | None,
                formats: list[str]) -> list:
    """Every image's format and header are checked before any image's pixels are decoded;
    each is then decoded and shrunk in turn, so one full-size image at most is in memory at a
    time."""
    for index, data in enumerate(images):
        _image_step(open_image, index, data, max_pixels, formats)
    return [_image_step(decode_image_bytes, index, data, max_pixels, input_side, formats)
            for index, data in enumerate(images)]


def _image_step(step: Any, index: int, *args: Any) -> Any:
    try:
        return step(*args)
    except _MEDIA_ERRORS as exc:
        raise type(exc)(f"input {index}: {exc}", f"input[{index}]") from None
