"""Which stage made a request miss its route's objective, from the Server-Timing stages the
client recorded (bench/server_timing.py).

A missed request is judged against its route's requests that met the objective: each of its
stages' time minus that stage's median among them (0 for a stage none of them had) is the
stage's excess, and the stage with the largest excess is blamed: the one that ran furthest
past its usual time, so a stage that is always long (the model) is not blamed for being long,
only for being longer than usual. The time the server did not see, the client's latency minus
the server's `total` (the network, a proxy in front, a busy client), is one more stage,
`outside-server`, judged the same way. A stream that missed its TTFT is judged on its stages up
to the first token (the header); any other miss on the whole request's stages. Where no
request met the objective, the medians are 0 and the longest stage is blamed.

A failed request is counted under `error` (errors_by_status says which), and a missed one
whose answer carried no Server-Timing (the observability switch off, another server) under
`unknown`.
"""

from __future__ import annotations

from collections import Counter
from statistics import median
from typing import Any

from bench.objectives import ERROR, TTFT
from bench.server_timing import TOTAL, first_token_timing, whole_timing

UNKNOWN, OUTSIDE = "unknown", "outside-server"
FIRST_TOKEN, WHOLE = "first-token", "whole"


def window_of(missed: list[str]) -> str:
    """The span of the request a miss is judged on."""
    return FIRST_TOKEN if TTFT in missed else WHOLE


def stage_times(record: Any, window: str) -> dict[str, float] | None:
    """The request's stages over `window`, `outside-server` included, without `total`; None
    when the client recorded none."""
    timing = first_token_timing(record) if window == FIRST_TOKEN else whole_timing(record)
    if not timing:
        return None
    client_s = record.ttft() if window == FIRST_TOKEN else record.e2e()
    stages = {name: seconds for name, seconds in timing.items() if name != TOTAL}
    if TOTAL in timing and client_s is not None:
        stages[OUTSIDE] = max(0.0, client_s - timing[TOTAL])
    return stages


def typical_times(met: list[Any], window: str) -> dict[str, float]:
    """Each stage's median over the requests that met the objective and carried it."""
    samples: dict[str, list[float]] = {}
    for record in met:
        for name, seconds in (stage_times(record, window) or {}).items():
            samples.setdefault(name, []).append(seconds)
    return {name: median(values) for name, values in samples.items()}


def blame(stages: dict[str, float], typical: dict[str, float]) -> str:
    """The stage whose time exceeds its typical time the most (ties: the first by name)."""
    return max(sorted(stages), key=lambda name: stages[name] - typical.get(name, 0.0))


def blamed_stage(record: Any, missed: list[str], typical: dict[str, dict[str, float]]) -> str:
    """`typical`: {window: typical_times} of the route."""
    if ERROR in missed:
        return ERROR
    window = window_of(missed)
    stages = stage_times(record, window)
    return blame(stages, typical[window]) if stages else UNKNOWN


def misses_by_stage(records: list[Any], verdicts: list[list[str]]) -> dict[str, int]:
    """{stage: missed requests blamed on it} over the records of one route, most first;
    `verdicts[i]` is what records[i] missed (bench/objectives.py `missed`)."""
    met = [r for r, missed in zip(records, verdicts) if not missed]
    typical = {window: typical_times(met, window) for window in (FIRST_TOKEN, WHOLE)}
    counts = Counter(blamed_stage(r, missed, typical)
                     for r, missed in zip(records, verdicts) if missed)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
