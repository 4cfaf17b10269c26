"""Where and when a benchmark ran: the machine, its load (`uptime`), versions, git commit."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def uptime() -> str:
    """`uptime`'s line (load averages over 1, 5 and 15 minutes)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
        # Results do not count: a suite rewrites its own committed reports as it goes, and a
        # soak's sweep leaves untracked ones; only a change to the code makes a run dirty.
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain",
                                "--untracked-files=no", "--", ".", ":!bench/results"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def machine() -> dict[str, Any]:
    import ray

    return {"host": platform.node(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "ray": ray.__version__,
            "git_commit": git_commit()}
