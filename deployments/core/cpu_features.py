"""What the CPU this process runs on offers: its architecture and its instruction-set flags.

Read once from /proc/cpuinfo (Linux; on x86 its `flags` line, on ARM its `Features` line), so
that the engines choose their dtypes from the machine they find (deployments/core/precision.py)
instead of from a profile written on another kind of CPU. Standard library only.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
X86 = ("x86_64", "amd64", "i686", "i386")
# The flags that matter to the choices, in the order a startup log lists them.
NOTABLE = ("amx_bf16", "amx_tile", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f",
           "avx_vnni", "avx2")


@dataclass(frozen=True)
class CpuFeatures:
    architecture: str  # platform.machine(), lower case: x86_64, aarch64...
    flags: frozenset[str]
    model_name: str = ""

    @property
    def is_x86(self) -> bool:
        return self.architecture in X86

    def has(self, *flags: str) -> bool:
        """True when the CPU has every one of `flags`."""
        return all(flag in self.flags for flag in flags)

    def notable(self) -> list[str]:
        """The flags the dtype choices look at that this CPU has."""
        return [flag for flag in NOTABLE if flag in self.flags]


def parse_cpuinfo(text: str, architecture: str) -> CpuFeatures:
    """The first processor's flags (x86 `flags`, ARM `Features`) and model name."""
    flags: set[str] = set()
    model = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key in ("flags", "features") and not flags:
            flags = set(value.split())
        elif key == "model name" and not model:
            model = value.strip()
    return CpuFeatures(architecture.lower(), frozenset(flags), model)


@functools.cache
def cpu_features(path: Path = CPUINFO) -> CpuFeatures:
    """This machine's CPU; no flags at all where `path` cannot be read (not Linux)."""
    try:
        text = path.read_text()
    except OSError:
        text = ""
    return parse_cpuinfo(text, platform.machine())
