"""Where and when a benchmark ran: the machine, its CPU and the flags that decide its speed, its
load (`uptime`), versions, the git commit and whether the tree was clean."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from deployments.core.cpu_features import CPUINFO, parse_cpuinfo

REPO = Path(__file__).resolve().parent.parent
# The instruction sets the engines' speed depends on: bfloat16 needs AVX512-BF16 or AMX.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
# Where runs write their own reports: a run that rewrites them does not dirty its tree.
OUTPUTS = "bench/results"
DIRTY_PATHS_KEPT = 20


def uptime() -> str:
    """`uptime`'s line (load averages over 1, 5 and 15 minutes)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def dirty_paths(repo: Path | None = None) -> list[str] | None:
    """Paths that differ from HEAD: changed, staged or untracked (gitignored ones and the
    runs' own outputs in bench/results aside); None when git cannot tell."""
    try:
        status = subprocess.run(
            ["git", "-C", str(repo or REPO), "status", "--porcelain", "--untracked-files=all",
             "--", ".", f":!{OUTPUTS}"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return [line[3:] for line in status.stdout.splitlines() if line.strip()]


def git_commit(repo: Path | None = None) -> str | None:
    """HEAD's short hash, with `-dirty` when any path outside the outputs differs from it,
    untracked files included."""
    try:
        out = subprocess.run(["git", "-C", str(repo or REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip() + ("-dirty" if dirty_paths(repo) else "")


def cpu_info(text: str) -> dict[str, Any]:
    """The CPU's model name and, for each of CPU_FLAGS, whether it has it, from the text of
    /proc/cpuinfo (deployments/core/cpu_features.py reads it as the engines do)."""
    cpu = parse_cpuinfo(text, platform.machine())
    return {"cpu_model": cpu.model_name or None,
            "cpu_flags": {flag: cpu.has(flag) for flag in CPU_FLAGS}}


def this_cpu() -> dict[str, Any]:
    try:
        return cpu_info(CPUINFO.read_text())
    except OSError:
        return {"cpu_model": platform.processor() or None, "cpu_flags": {}}


def cpu_line(environment: dict[str, Any]) -> str:
    """'Intel(R) Xeon(R) ...; avx2 yes, avx512f yes, avx512_bf16 no, ...' for a report."""
    flags = environment.get("cpu_flags") or {}
    listed = ", ".join(f"{flag} {'yes' if has else 'no'}" for flag, has in flags.items())
    return f"{environment.get('cpu_model') or 'unknown CPU'}; {listed or 'flags unknown'}"


def dirty_line(environment: dict[str, Any]) -> str | None:
    """A warning for a report's header when the tree was dirty, else None."""
    commit = str(environment.get("git_commit"))
    if not commit.endswith("-dirty"):
        return None
    paths = environment.get("dirty_paths") or []
    shown = ", ".join(f"`{p}`" for p in paths[:5]) + (", ..." if len(paths) > 5 else "")
    return (f"**DIRTY TREE**: run at `{commit}` with uncommitted or untracked changes"
            + (f" ({shown})" if shown else "") + "; the commit does not name the code measured")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def machine() -> dict[str, Any]:
    import ray

    dirty = dirty_paths()
    return {"host": platform.node(), "cpu_count": os.cpu_count(), **this_cpu(),
            "python": platform.python_version(), "ray": ray.__version__,
            "git_commit": git_commit(), "dirty_paths": (dirty or [])[:DIRTY_PATHS_KEPT]}
