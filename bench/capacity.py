"""An open-loop rate as a multiple of the app's measured capacity: the most requests per second
any level of a sweep served (`python -m bench sweep`, its JSON report), whatever its latency.
An overload test offers more than that (e.g. 1.5x, with bursts) and reads what stayed within
each route's objective.

    python -m bench sweep --profile cpu --workload mixed --concurrency-list 4,8,16,32 --out S
    python -m bench run --profile cpu --workload mixed --arrivals bursty \
        --capacity-from S/NAME.json --times-capacity 1.5
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def measured_capacity(sweep: dict[str, Any]) -> float:
    """The highest request throughput among the sweep's levels."""
    served = [p["overall"]["request_throughput"] for p in sweep.get("points") or ()
              if p.get("overall")]
    if not served or max(served) <= 0:
        raise ValueError(f"the sweep {sweep.get('name')!r} served no requests: no capacity")
    return max(served)


def rate_from_capacity(path: Path, times: float) -> float:
    """`times` the capacity measured by the sweep report at `path`, in requests/s."""
    sweep = json.loads(Path(path).read_text())
    if not str(sweep.get("schema", "")).startswith("mmserve-bench/sweep/"):
        raise ValueError(f"{path} is not a sweep report")
    if times <= 0:
        raise ValueError("the multiple of the capacity must be positive")
    return times * measured_capacity(sweep)
