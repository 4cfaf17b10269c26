"""Which dtype (torch engines) and compute type (CTranslate2) an engine runs in when its config
says `auto`: chosen from the CPU it finds (deployments/core/cpu_features.py), each choice with
the one-line reason that the startup log and `/v1/models` show.

bfloat16 pays on a CPU only with native bfloat16 instructions (AVX512-BF16 or AMX;
docs/engines.md has the measurements); without them torch and vLLM fall back to converting every
element and bfloat16 runs slower than float32. CTranslate2's int8 needs integer dot products of
at least AVX2 width to pay on x86. A profile that names a value forces it: `auto` is the only
value chosen here.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

from deployments.core.cpu_features import CpuFeatures

AUTO = "auto"
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
INT8_X86_FLAG = "avx2"
logger = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class Choice:
    """A dtype or compute type and why it was chosen."""

    value: str
    reason: str

    def __str__(self) -> str:
        return f"{self.value} ({self.reason})"

    def as_fields(self, name: str) -> dict[str, str]:
        """{name: value, name_reason: reason}, as `/v1/models` lists them."""
        return {name: self.value, f"{name}_reason": self.reason}


def forced(value: str) -> Choice:
    return Choice(value, "set in the config")


def cpu_dtype(cpu: CpuFeatures) -> Choice:
    """bfloat16 with AVX512-BF16 or AMX, else float32 (torch engines on a CPU)."""
    if not cpu.is_x86:
        return Choice("float32", f"auto: bfloat16 is chosen on x86 with avx512_bf16 or "
                      f"amx_bf16 only, not on {cpu.architecture or 'an unknown architecture'}")
    present = [flag for flag in BF16_FLAGS if cpu.has(flag)]
    if present:
        return Choice("bfloat16", f"auto: the CPU has {' and '.join(present)}")
    return Choice("float32", "auto: the CPU has no avx512_bf16 or amx_bf16, so bfloat16 "
                  "would be emulated (slower than float32)")


def resolve_dtype(configured: str, cpu: CpuFeatures) -> Choice:
    """A CPU engine's torch dtype: the configured one, or for `auto` the CPU's choice."""
    return cpu_dtype(cpu) if configured == AUTO else forced(configured)


def cuda_dtype(bf16_supported: bool) -> Choice:
    """A torch engine's `auto` dtype on a CUDA device: bfloat16 where the GPU has it."""
    if bf16_supported:
        return Choice("bfloat16", "auto: the CUDA device supports bfloat16")
    return Choice("float32", "auto: the CUDA device has no bfloat16")


def cpu_compute_type(cpu: CpuFeatures, supported: Collection[str] | None = None) -> Choice:
    """CTranslate2 on a CPU: int8 on x86 with AVX2 (where int8 matrix products pay) when the
    installed CTranslate2 offers it (`supported`: ctranslate2.get_supported_compute_types),
    else float32."""
    if supported is not None and "int8" not in supported:
        return Choice("float32", "auto: this CTranslate2 build has no int8 on CPU")
    if not cpu.is_x86:
        return Choice("float32", f"auto: int8 is chosen on x86 with avx2 only, "
                      f"not on {cpu.architecture or 'an unknown architecture'}")
    if not cpu.has(INT8_X86_FLAG):
        return Choice("float32", "auto: the CPU has no avx2, which int8 needs to pay")
    vnni = [flag for flag in ("avx512_vnni", "avx_vnni") if cpu.has(flag)]
    extra = f" and {' and '.join(vnni)}" if vnni else ""
    return Choice("int8", f"auto: the CPU has avx2{extra}")


def cuda_compute_type() -> Choice:
    return Choice("float16", "auto: a CUDA device")


def resolve_compute_type(configured: str, device: str, cpu: CpuFeatures,
                         supported: Collection[str] | None = None) -> Choice:
    """Whisper's CTranslate2 compute type on `device` ("cpu" or "cuda", already resolved)."""
    if configured != AUTO:
        return forced(configured)
    return cuda_compute_type() if device == "cuda" else cpu_compute_type(cpu, supported)


def as_fields(choices: dict[str, Choice]) -> dict[str, str]:
    """{"dtype": "bfloat16", "dtype_reason": "..."} for every choice an engine made."""
    return {key: value for name, choice in choices.items()
            for key, value in choice.as_fields(name).items()}


def announce(engine: str, choices: dict[str, Choice]) -> None:
    """One startup line per choice in the replica's log, e.g. "text engine vllm: dtype bfloat16
    (auto: the CPU has avx512_bf16)"; on Serve's logger, so that it lands in the replica's log."""
    for name, choice in choices.items():
        logger.info("%s: %s %s", engine, name, choice)
