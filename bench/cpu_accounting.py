"""Where the machine's CPU went during a run: CPU seconds per process (from /proc), grouped by
process title, for runs whose servers live on this machine. Linux only; empty elsewhere."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

TOP = 12


def snapshot() -> dict[tuple[str, str], float]:
    """{(pid, title): CPU seconds so far} for every process that can be read."""
    proc = Path("/proc")
    if not proc.exists():
        return {}
    ticks = os.sysconf("SC_CLK_TCK")
    times: dict[tuple[str, str], float] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        times[(entry.name, title[:60] or "?")] = (int(fields[11]) + int(fields[12])) / ticks
    return times


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]
    return (sum(values) - idle) / ticks, sum(values) / ticks


def _without_task(title: str) -> str:
    """'ray::ProxyActor.receive_asgi_messages' -> 'ray::ProxyActor'."""
    return title.split(".", 1)[0] if title.startswith("ray::") else title


def usage(before: dict, after: dict, busy_before: tuple[float, float],
          busy_after: tuple[float, float]) -> dict[str, object]:
    """CPU seconds per process title between two snapshots, largest first. Processes are
    matched by pid: a Ray worker retitles itself with each task it runs."""
    before_by_pid = {pid: seconds for (pid, _), seconds in before.items()}
    by_title: dict[str, float] = defaultdict(float)
    for (pid, title), seconds in after.items():
        by_title[_without_task(title)] += seconds - before_by_pid.get(pid, 0.0)
    top = sorted(by_title.items(), key=lambda item: -item[1])[:TOP]
    busy = busy_after[0] - busy_before[0]
    total = busy_after[1] - busy_before[1]
    return {"cpu_seconds_by_process": {title: round(s, 2) for title, s in top if s > 0},
            "machine_busy_fraction": busy / total if total else None,
            "machine_cpu_seconds": total}
