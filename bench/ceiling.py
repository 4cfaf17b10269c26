"""The ceiling for CLIP image embeddings on this machine: the same model's offline batched
throughput in one process, with no server at all (decode, preprocess and encode of each image).

    python -m bench ceiling --threads 2 --batch 16 --batches 8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.app_launcher import REPO
from bench.images import synthetic_image


def measure(threads: int, batch: int, batches: int, image_size: int = 224) -> dict[str, Any]:
    from deployments.engines import load_vision_engine
    from deployments.engines.open_clip_engine import decode_image_bytes
    from serve_app.config import VisionEngineConfig
    from serve_app.models import default_model_dir

    engine = load_vision_engine(VisionEngineConfig(threads=threads), str(default_model_dir()))
    images = [synthetic_image(i, image_size) for i in range(batch)]
    engine.embed_images([decode_image_bytes(data) for data in images])  # warm-up
    started = time.perf_counter()
    for _ in range(batches):
        engine.embed_images([decode_image_bytes(data) for data in images])
    seconds = time.perf_counter() - started
    return {"threads": threads, "batch": batch, "images": batch * batches, "seconds": seconds,
            "images_per_s": batch * batches / seconds}


def measure_in_subprocess(threads: int, batch: int = 16, batches: int = 8) -> dict[str, Any]:
    """In a fresh process, so the thread count is the process's own from the start."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "bench", "ceiling", "--threads", str(threads),
                          "--batch", str(batch), "--batches", str(batches)], env=env,
                         capture_output=True, text=True, check=True, timeout=1200)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(args: argparse.Namespace) -> int:
    print(json.dumps(measure(args.threads, args.batch, args.batches)))
    return 0
