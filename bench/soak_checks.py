"""The soak's pass/fail rules, on plain data: request records, the kills, memory samples.

- no 5xx but 503 (a 500, a 502, a 504: all fail), no transport error;
- no other failed request (the workload sends only good ones) ...
- ... except 503s, 429s and streams broken in-band, and only those whose time in flight
  overlaps the window around a kill; every 503 and 429 carries a Retry-After of whole seconds;
- per-replica resident memory grows by less than `max_rss_growth` from minute `rss_from_s` of
  the soak to its end. A replica started during the soak (a replacement) is measured from its own
  start plus `rss_warmup_s`; one killed is measured up to its last sample. A replica with less
  than `min_rss_span_s` between those points is listed as not compared, with the reason.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from bench.records import RequestRecord

TOLERATED_AROUND_KILLS = (429, 503)
_STREAM_CODE = re.compile(r"""['"]code['"]:\s*(\d{3})""")


@dataclass(frozen=True)
class SoakRules:
    kill_window_before_s: float = 1.0
    kill_window_after_s: float = 45.0
    rss_from_s: float = 120.0
    rss_warmup_s: float = 60.0
    min_rss_span_s: float = 60.0
    max_rss_growth: float = 0.05


@dataclass(frozen=True)
class RssSample:
    at: float  # epoch seconds
    deployment: str
    pid: int
    rss_bytes: int
    replica_started_at: float  # epoch seconds, as Serve reports the replica's start


def stream_error_code(record: RequestRecord) -> int | None:
    """The status inside an in-band stream error, when the error event carried one."""
    if record.status != 200 or not record.error:
        return None
    found = _STREAM_CODE.search(record.error)
    return int(found.group(1)) if found else None


def effective_status(record: RequestRecord) -> int:
    """The HTTP status, or for a stream that began with 200 and then failed, its in-band code
    (503 when it carried none: the stream was cut, which is how a dead replica shows)."""
    if record.status == 200 and not record.ok and record.error:
        return stream_error_code(record) or 503
    return record.status


def kill_windows(kills: list[dict[str, Any]], rules: SoakRules) -> list[tuple[float, float]]:
    return [(k["at"] - rules.kill_window_before_s, k["at"] + rules.kill_window_after_s)
            for k in kills]


def _in_window(record: RequestRecord, windows: list[tuple[float, float]]) -> bool:
    end = record.finished_at() or record.start
    return any(record.start <= high and end >= low for low, high in windows)


def request_checks(records: list[RequestRecord], kills: list[dict[str, Any]],
                   rules: SoakRules) -> dict[str, dict[str, Any]]:
    """{check name: {"passed", "count", "examples"}} over every record of the soak."""
    windows = kill_windows(kills, rules)
    failed = [r for r in records if not r.ok]
    server_errors = [r for r in failed if effective_status(r) >= 500
                     and effective_status(r) != 503]
    transport = [r for r in failed if r.status == 0]
    tolerated = [r for r in failed if effective_status(r) in TOLERATED_AROUND_KILLS]
    outside = [r for r in tolerated if not _in_window(r, windows)]
    no_retry_after = [r for r in failed if r.status in TOLERATED_AROUND_KILLS
                      and not (r.retry_after or "").strip().isdigit()]
    other = [r for r in failed if r.status != 0 and effective_status(r) < 500
             and effective_status(r) not in TOLERATED_AROUND_KILLS]
    return {
        "no_server_error": _check(server_errors),
        "no_transport_error": _check(transport),
        "unavailable_only_around_kills": _check(outside),
        "retry_after_always": _check(no_retry_after),
        "no_other_error": _check(other),
    }


def _check(bad: list[RequestRecord]) -> dict[str, Any]:
    return {"passed": not bad, "count": len(bad),
            "examples": [{"route": r.route, "start": r.start, "status": r.status,
                          "error": (r.error or "")[:200]} for r in bad[:5]]}


def rss_growth(samples: list[RssSample], soak_start: float,
               rules: SoakRules) -> list[dict[str, Any]]:
    """One row per replica process: its baseline and last RSS, growth, and whether it passed."""
    by_pid: dict[int, list[RssSample]] = defaultdict(list)
    for sample in sorted(samples, key=lambda s: s.at):
        by_pid[sample.pid].append(sample)
    return [_replica_growth(series, soak_start, rules) for series in by_pid.values()]


def _replica_growth(series: list[RssSample], soak_start: float,
                    rules: SoakRules) -> dict[str, Any]:
    first = series[0]
    replacement = first.replica_started_at > soak_start
    measure_from = (first.replica_started_at + rules.rss_warmup_s if replacement
                    else soak_start + rules.rss_from_s)
    row: dict[str, Any] = {"deployment": first.deployment, "pid": first.pid,
                           "started_during_soak": replacement,
                           "measured_from_s": round(measure_from - soak_start, 1)}
    later = [s for s in series if s.at >= measure_from]
    span = later[-1].at - later[0].at if later else 0.0
    if span < rules.min_rss_span_s:
        return {**row, "compared": False, "passed": None,
                "reason": f"{span:.0f} s of samples after its measuring point "
                          f"(needs {rules.min_rss_span_s:.0f} s)"}
    base, last = later[0], later[-1]
    growth = (last.rss_bytes - base.rss_bytes) / base.rss_bytes
    return {**row, "compared": True, "passed": growth < rules.max_rss_growth,
            "from_s": round(base.at - soak_start, 1), "to_s": round(last.at - soak_start, 1),
            "rss_from_mib": round(base.rss_bytes / 2**20, 1),
            "rss_to_mib": round(last.rss_bytes / 2**20, 1), "growth": round(growth, 4)}


def rss_check(rows: list[dict[str, Any]]) -> dict[str, Any]:
    compared = [row for row in rows if row["compared"]]
    failing = [row for row in compared if not row["passed"]]
    return {"passed": bool(compared) and not failing, "count": len(failing),
            "compared": len(compared), "not_compared": len(rows) - len(compared),
            "examples": failing[:5]}
