"""CLIP deployment: batched image and text embeddings, zero-shot image classification."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import numpy as np
from ray import serve

from deployments.batcher import DynamicBatcher
from deployments.engines import load_vision_engine
from deployments.engines.open_clip_engine import (
    ImageDecodeError,
    decode_image_bytes,
    zero_shot_scores,
)
from deployments.replica_base import BatchedReplica
from serve_app.config import VisionSettings
from serve_app.errors import ServeError

_LABEL_CACHE_SIZE = 4096


@serve.deployment
class ImageEmbedder(BatchedReplica):
    batched_methods = ("image_batches", "text_batches")

    def __init__(self, settings: dict[str, Any], model_dir: str) -> None:
        super().__init__()
        self.settings = VisionSettings.model_validate(settings)
        self.engine = load_vision_engine(self.settings.engine, model_dir)
        self._label_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self.image_batches = DynamicBatcher(self._embed_image_batch)
        self.text_batches = DynamicBatcher(self._embed_text_batch)

    async def embed_images(self, images: list[bytes]) -> list[np.ndarray]:
        decoded = await asyncio.to_thread(_decode_all, images)
        return list(await asyncio.gather(*(self.image_batches(i) for i in decoded)))

    async def embed_texts(self, texts: list[str]) -> list[np.ndarray]:
        return list(await asyncio.gather(*(self.text_batches(t) for t in texts)))

    async def classify(self, image: bytes, labels: list[str]) -> list[dict[str, Any]]:
        """Labels with zero-shot probabilities, most likely first."""
        if len(labels) > self.settings.max_labels:
            raise ServeError(400, f"at most {self.settings.max_labels} labels", "labels")
        image_vector, label_vectors = await asyncio.gather(
            self.embed_images([image]), self._label_embeddings(labels)
        )
        scores = zero_shot_scores(image_vector[0], np.stack(label_vectors))
        ranked = sorted(zip(labels, scores), key=lambda pair: -pair[1])
        return [{"label": label, "score": float(score)} for label, score in ranked]

    async def _label_embeddings(self, labels: list[str]) -> list[np.ndarray]:
        missing = [label for label in dict.fromkeys(labels) if label not in self._label_vectors]
        vectors = await self.embed_texts([f"a photo of a {label}." for label in missing])
        for label, vector in zip(missing, vectors):
            self._label_vectors[label] = vector
        while len(self._label_vectors) > _LABEL_CACHE_SIZE:
            self._label_vectors.popitem(last=False)
        return [self._label_vectors[label] for label in labels]

    async def _embed_image_batch(self, images: list) -> list[np.ndarray]:
        with self.stats.model_call("embed_image", len(images)):
            return list(await self.run_model(self.engine.embed_images, images))

    async def _embed_text_batch(self, texts: list[str]) -> list[np.ndarray]:
        with self.stats.model_call("embed_text", len(texts)):
            return list(await self.run_model(self.engine.embed_texts, texts))


def _decode_all(images: list[bytes]) -> list:
    decoded = []
    for index, data in enumerate(images):
        try:
            decoded.append(decode_image_bytes(data))
        except ImageDecodeError as exc:
            raise ServeError(422, f"input {index}: {exc}", "input") from None
    return decoded
