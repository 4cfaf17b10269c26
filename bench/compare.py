"""`python -m bench compare A.json B.json`: two run reports side by side, with B/A ratios."""

from __future__ import annotations

from typing import Any

from bench.report import load_report

# (label, path into metrics["overall"], True when higher is better)
ROWS = (
    ("request throughput (req/s)", ("request_throughput",), True),
    ("item throughput (/s)", ("item_throughput",), True),
    ("output tokens (tok/s)", ("output_token_throughput",), True),
    ("goodput (req/s)", ("goodput", "requests_per_s"), True),
    ("within route SLO (req/s)", ("route_slo", "requests_per_s"), True),
    ("within route SLO (share)", ("route_slo", "fraction"), True),
    ("errors", ("requests", "errors"), False),
    *((f"{metric} {q} (ms)", (metric, q), False)
      for metric in ("ttft", "itl", "tpot", "e2e") for q in ("mean", "p50", "p95", "p99")),
    ("audio RTF p50", ("rtf", "p50"), False),
)


def dig(metrics: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = metrics
    for key in path:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return float(value)


def comparison_rows(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for label, path, higher_better in ROWS:
        x, y = dig(a, path), dig(b, path)
        if x is None and y is None:
            continue
        scale = 1000.0 if label.endswith("(ms)") else 1.0
        ratio = "-" if x in (None, 0) or y is None else f"{y / x:.2f}x"
        if ratio != "-" and y != x:
            ratio += "  (B better)" if (y > x) == higher_better else "  (A better)"
        rows.append((label, _fmt(x, scale), _fmt(y, scale), ratio))
    return rows


def _fmt(value: float | None, scale: float) -> str:
    return "-" if value is None else f"{value * scale:.2f}"


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def compare(path_a: str, path_b: str) -> str:
    a, b = load_report(path_a), load_report(path_b)
    parts = [f"A: {path_a}  ({a['name']}, {a['target']['kind']}, load {a['load']['mode']} "
             f"c={a['load']['concurrency']} rate={a['load']['rate']})",
             f"B: {path_b}  ({b['name']}, {b['target']['kind']}, load {b['load']['mode']} "
             f"c={b['load']['concurrency']} rate={b['load']['rate']})", "",
             "overall", table(comparison_rows(a["metrics"]["overall"], b["metrics"]["overall"]),
                              ("metric", "A", "B", "B/A"))]
    for route in sorted(set(a["metrics"]["routes"]) & set(b["metrics"]["routes"])):
        rows = comparison_rows(a["metrics"]["routes"][route], b["metrics"]["routes"][route])
        parts += ["", f"route {route}", table(rows, ("metric", "A", "B", "B/A"))]
    return "\n".join(parts)
