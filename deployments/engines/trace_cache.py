"""Frozen TorchScript modules kept on disk beside the checkpoint they were traced from.

A replica started later (a scale-up) loads its traced image tower in ~0.2 s instead of
importing open_clip, building the model, loading the weights and tracing again: ~5 s of one
core here, and ~12 s while the other replica keeps that core busy, which is how long a second
vision replica used to take to serve under load. The key covers everything the trace depends
on: the checkpoint file (path, size, mtime, and the inode and ctime that any rewrite or
replacement changes, even one that keeps size and mtime, as `cp -p`, `rsync -t` or tar do),
the engine settings and torch's version. A cache that cannot be written (a read-only model
volume) or read is skipped, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)
SUFFIX = ".torchscript"  # open_clip_model.safetensors -> open_clip_model.torchscript/


def _entry(checkpoint: str | None, settings: dict[str, Any]) -> Path | None:
    """The cache path (without extension) for this checkpoint file and these settings."""
    if not checkpoint or not os.path.isfile(checkpoint):
        return None  # a pretrained tag open_clip downloads, not a file of ours
    stat = os.stat(checkpoint)
    key = {"checkpoint": os.path.abspath(checkpoint), "size": stat.st_size,
           "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns, "inode": stat.st_ino,
           "torch": torch.__version__, **settings}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(checkpoint).with_suffix(SUFFIX) / digest


def load(checkpoint: str | None, settings: dict[str, Any],
         device: str = "cpu") -> tuple[torch.jit.ScriptModule, dict[str, Any]] | None:
    """(module, metadata) saved for this checkpoint and settings, or None."""
    entry = _entry(checkpoint, settings)
    if entry is None or not entry.with_suffix(".json").exists():
        return None
    try:
        meta = json.loads(entry.with_suffix(".json").read_text())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # jit.load's deprecation notice
            module = torch.jit.load(str(entry.with_suffix(".pt")), map_location=device)
    except Exception as error:  # a torn or foreign file: trace again
        logger.warning("ignoring the cached trace %s: %s", entry, error)
        return None
    return module, meta


def save(checkpoint: str | None, settings: dict[str, Any], module: torch.jit.ScriptModule,
         meta: dict[str, Any]) -> Path | None:
    """Stores `module` and `meta` for the next load; the path, or None when it cannot."""
    entry = _entry(checkpoint, settings)
    if entry is None:
        return None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        # Written under temporary names and renamed, module first: the metadata file marks a
        # complete entry, so a replica starting meanwhile never loads half a file.
        for suffix, write in ((".pt", lambda path: torch.jit.save(module, path)),
                              (".json", lambda path: Path(path).write_text(json.dumps(meta)))):
            fd, tmp = tempfile.mkstemp(dir=entry.parent, suffix=suffix + ".tmp")
            os.close(fd)
            try:
                os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from other users of the store
                write(tmp)
                os.replace(tmp, entry.with_suffix(suffix))
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    except (OSError, RuntimeError) as error:  # RuntimeError: torch's own write errors
        logger.warning("cannot cache the trace beside %s: %s", checkpoint, error)
        return None
    return entry
