"""The ceiling for CLIP image embeddings on this machine: the same model's offline batched
throughput in one process, with no server at all (decode, preprocess and encode of each image).

    python -m bench ceiling --threads 2 --batch 16 --batches 8

Besides one process with N threads, `measure_processes` runs N one-thread processes at once
(the layout of N one-thread replicas) and adds up their throughput; a file barrier makes them
start timing together, after each has loaded and warmed up its model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.app_launcher import REPO
from bench.images import synthetic_image


def _wait_for_peers(barrier: str | None, parties: int) -> None:
    if not barrier:
        return
    folder = Path(barrier)
    (folder / f"ready-{os.getpid()}").touch()
    while len(list(folder.glob("ready-*"))) < parties:
        time.sleep(0.05)


def measure(threads: int, batch: int, batches: int, image_size: int = 224,
            barrier: str | None = None, parties: int = 1) -> dict[str, Any]:
    from deployments.core.config import VisionEngineConfig
    from deployments.core.image_media import decode_image_bytes
    from deployments.core.models import default_model_dir
    from deployments.engines import load_vision_engine

    engine = load_vision_engine(VisionEngineConfig(threads=threads), str(default_model_dir()))
    images = [synthetic_image(i, image_size) for i in range(batch)]
    engine.embed_images([decode_image_bytes(data) for data in images])  # warm-up
    _wait_for_peers(barrier, parties)
    started = time.perf_counter()
    for _ in range(batches):
        engine.embed_images([decode_image_bytes(data) for data in images])
    seconds = time.perf_counter() - started
    return {"threads": threads, "batch": batch, "images": batch * batches, "seconds": seconds,
            "images_per_s": batch * batches / seconds}


def _command(threads: int, batch: int, batches: int) -> list[str]:
    return [sys.executable, "-m", "bench", "ceiling", "--threads", str(threads), "--batch",
            str(batch), "--batches", str(batches)]


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}


def measure_in_subprocess(threads: int, batch: int = 16, batches: int = 8) -> dict[str, Any]:
    """In a fresh process, so the thread count is the process's own from the start."""
    out = subprocess.run(_command(threads, batch, batches), env=_env(threads),
                         capture_output=True, text=True, check=True, timeout=1200)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_processes(processes: int, batch: int = 16, batches: int = 8) -> dict[str, Any]:
    """`processes` one-thread processes at once; their images/s added up."""
    with tempfile.TemporaryDirectory(prefix="ceiling-") as barrier:
        extra = ["--barrier", barrier, "--parties", str(processes)]
        running = [subprocess.Popen(_command(1, batch, batches) + extra, env=_env(1),
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True) for _ in range(processes)]
        results = [json.loads(p.communicate(timeout=1200)[0].strip().splitlines()[-1])
                   for p in running]
    return {"processes": processes, "threads": 1, "batch": batch,
            "images_per_s": sum(r["images_per_s"] for r in results), "each": results}


def main(args: argparse.Namespace) -> int:
    print(json.dumps(measure(args.threads, args.batch, args.batches, barrier=args.barrier,
                             parties=args.parties)))
    return 0
