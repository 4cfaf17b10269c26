"""Service-level objectives from the command line, and whether one request meets them.

    --slo ttft=500ms,e2e=5s,tpot=50ms,itl=200ms,rtf=0.5

Times take ms, s or m (a bare number is seconds); rtf has no unit. A request meets the SLO
when it succeeded and every bound that applies to it holds. A bound on a metric the request
does not have (ttft of a non-streamed request, rtf of a chat) does not apply to it; the report
lists which bounds were never checked. `itl` bounds the longest gap between two tokens of a
request, `tpot` its mean time per output token after the first.
"""

from __future__ import annotations

from typing import Any

TIME_METRICS = ("ttft", "tpot", "itl", "e2e")
UNITLESS_METRICS = ("rtf",)
_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_duration(text: str, allow_zero: bool = False) -> float:
    """'500ms' -> 0.5, '5s' -> 5.0, '2m' -> 120.0, '1.5' -> 1.5 (seconds)."""
    text = text.strip().lower()
    for unit in ("ms", "s", "m"):  # "ms" before "s" and "m"
        if text.endswith(unit):
            number, scale = text[: -len(unit)], _UNITS[unit]
            break
    else:
        number, scale = text, 1.0
    try:
        value = float(number) * scale
    except ValueError:
        raise ValueError(f"bad duration {text!r}; write e.g. 500ms, 5s or 2m") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"bad duration {text!r}: it must be positive")
    return value


def parse_slo(text: str | None) -> dict[str, float]:
    """{'ttft': 0.5, 'e2e': 5.0} from 'ttft=500ms,e2e=5s'; {} for None or ''."""
    bounds: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in TIME_METRICS + UNITLESS_METRICS:
            raise ValueError(f"bad SLO {part!r}; use NAME=VALUE with NAME one of "
                             f"{', '.join(TIME_METRICS + UNITLESS_METRICS)}")
        bounds[name] = parse_duration(value) if name in TIME_METRICS else float(value)
    return bounds


def request_values(record: Any) -> dict[str, float | None]:
    """The values of one record that SLO bounds apply to (None where it has none)."""
    gaps = record.itls()
    return {"ttft": record.ttft(), "tpot": record.tpot(), "itl": max(gaps) if gaps else None,
            "e2e": record.e2e(), "rtf": record.rtf()}


def meets(record: Any, bounds: dict[str, float]) -> bool:
    if not record.ok:
        return False
    values = request_values(record)
    return all(values[name] is None or values[name] <= bound for name, bound in bounds.items())


def unchecked(records: list[Any], bounds: dict[str, float]) -> list[str]:
    """SLO metrics that no successful request had, so they constrained nothing."""
    seen = set()
    for record in records:
        if record.ok:
            seen.update(name for name, value in request_values(record).items()
                        if value is not None)
    return sorted(name for name in bounds if name not in seen)
