"""A run's figures as the suites' tables show them, from its report alone (no Ray, no
server): the overall metrics, a quantile, a streaming chat's row, a number printed."""

from __future__ import annotations

from typing import Any


def overall(report: dict[str, Any]) -> dict[str, Any]:
    return report["metrics"]["overall"]


def quantile(report: dict[str, Any], metric: str, q: str) -> float | None:
    values = overall(report).get(metric)
    return values[q] if values else None


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def chat_row(report: dict[str, Any]) -> dict[str, Any]:
    """A streaming-chat run's figures: tokens/s, TTFT, ITL, errors, goodput, token counts."""
    o = overall(report)
    ok = o["requests"]["ok"]
    goodput = o.get("goodput") or {}
    return {"clients": report["load"]["concurrency"],
            "output_tokens_per_s": o["output_token_throughput"],
            "ttft_p50": quantile(report, "ttft", "p50"),
            "ttft_p95": quantile(report, "ttft", "p95"),
            "itl_p50": quantile(report, "itl", "p50"),
            "requests": ok, "errors": o["requests"]["errors"],
            "prompt_tokens_per_request": o["prompt_tokens"] / ok if ok else None,
            "output_tokens_per_request": o["output_tokens"] / ok if ok else None,
            "goodput_requests_per_s": goodput.get("requests_per_s"),
            "goodput_fraction": goodput.get("fraction")}
