"""The mixed workload on the app and on what a team that picked vLLM would run instead, at 16
concurrent clients (what batching and replica groups gain) and at 1 (what they cost at low
load), in alternated rounds (bench/rounds.py).

Each round, one stack after the other, each started for its runs and stopped after:
1. `app`: the app on the default profile `cpu` (vLLM text group, CLIP, Whisper; HAProxy), its
   queues in arrival order (`slo.scheduling: fifo`, the default);
2. `app-slo`: the same with `slo.scheduling: slo` (earliest objective first, admission and
   batch sizes from the objective: docs/scheduling.md);
3. `peers`: vLLM's own OpenAI server with the same text engine settings (model folder,
   dtype, max_num_seqs, KV-cache space, threads, compile settings) beside a plain FastAPI
   threadpool server for CLIP and Whisper (bench/peer_stack.py). The load generator sends chat
   completions to the vLLM server and every other route to the threadpool server, whose
   pipeline calls the vLLM server over HTTP for its LLM stage.
The transformers-float32 threadpool server (bench/baseline_server.py), measured as a labelled
extra until d047201, is no like-for-like peer and is no longer run here.

Reported per round and across rounds (median, min-max): throughput, output tokens/s, TTFT p50
and p95, the requests/s within their route's objective (bench/objectives.py: the app's
defaults), and every route's e2e p95 and share within its objective, side by side. Goals,
checked in every round for each app stack against `peers` at 16 clients
(bench/suites/stacks_goals.py): within-SLO requests/s at least 2x, every route's e2e p95 at or
below, requests/s at least 1.5x.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.app_launcher import running_app
from bench.load import LoadSpec
from bench.peer_stack import running_peers
from bench.rounds import DEFAULT_ROUNDS, median_range
from bench.suites.common import Round, Suite, fmt, overall, quantile, ratio
from bench.suites.stacks_goals import GOALS, PEER, goal_rows, goals_met
from bench.workloads import DEFAULT_MIX, build_workload

CLIENTS = (16, 1)
HEADLINE_CLIENTS = 16
PROFILE = "cpu"
SLO_ARGS = {"slo": {"scheduling": "slo"}}
STACKS = {"app": f"mmserve, profile `{PROFILE}`, queues in arrival order (the default)",
          "app-slo": f"mmserve, profile `{PROFILE}`, `slo.scheduling: slo`",
          "peers": "vLLM OpenAI server + FastAPI threadpool server (CLIP, Whisper)"}
APPS = ("app", "app-slo")


def run(command: str, out: Path | None, duration_s: float,
        rounds: int = DEFAULT_ROUNDS) -> dict[str, Any]:
    suite = Suite("stacks", command, out, duration_s, rounds)
    workload = build_workload("mixed", {"mix": DEFAULT_MIX, "output_len": "uniform:16,48"})
    specs = {c: LoadSpec(concurrency=c, duration_s=duration_s, warmup_s=15.0) for c in CLIENTS}
    suite.extra["stacks"] = STACKS
    starts = {"app": lambda: running_app(PROFILE),
              "app-slo": lambda: running_app(PROFILE, args=SLO_ARGS),
              "peers": lambda: running_peers(PROFILE)}

    def one_round(round_: Round) -> tuple[dict[str, Any], str]:
        for stack, start in starts.items():
            with start() as target:
                round_.extra.setdefault("targets", {})[stack] = target.config
                for clients, spec in specs.items():
                    round_.run(label(stack, clients), target, workload, spec)
        return summarize(round_)

    return suite.in_rounds(one_round, across_rounds)


def label(stack: str, clients: int) -> str:
    return f"{stack}-c{clients}"


def stack_figures(report: dict[str, Any]) -> dict[str, Any]:
    """One run's headline figures, with every route's e2e p95 and share within its
    objective."""
    o = overall(report)
    routes = report["metrics"]["routes"]
    return {"clients": report["load"]["concurrency"],
            "request_throughput": o["request_throughput"],
            "output_tokens_per_s": o["output_token_throughput"],
            "ttft_p50": quantile(report, "ttft", "p50"),
            "ttft_p95": quantile(report, "ttft", "p95"),
            "e2e_p50": quantile(report, "e2e", "p50"),
            "e2e_p95": quantile(report, "e2e", "p95"),
            "errors": o["requests"]["errors"],
            "goodput_requests_per_s": (o.get("route_slo") or {}).get("requests_per_s"),
            "route_e2e_p95": {route: (m.get("e2e") or {}).get("p95")
                              for route, m in sorted(routes.items())},
            "route_within_slo": {route: (m.get("route_slo") or {}).get("fraction")
                                 for route, m in sorted(routes.items())},
            "route_errors": {route: m["requests"]["errors"]
                             for route, m in sorted(routes.items())}}


def _ratios(figures: dict[str, dict[str, Any]], app_stack: str,
            other: str) -> dict[str, float | None]:
    """An app stack over another stack: throughput (above 1: the app serves more), latencies
    (below 1: the app answers sooner)."""
    app, peer = (figures.get(label(s, HEADLINE_CLIENTS)) for s in (app_stack, other))
    one_app, one_peer = (figures.get(label(s, 1)) for s in (app_stack, other))
    if app is None or peer is None:
        return {}
    ratios = {f"throughput_c{HEADLINE_CLIENTS}": ratio(app["request_throughput"],
                                                       peer["request_throughput"]),
              f"goodput_c{HEADLINE_CLIENTS}": ratio(app["goodput_requests_per_s"],
                                                    peer["goodput_requests_per_s"]),
              f"ttft_p95_c{HEADLINE_CLIENTS}": ratio(app["ttft_p95"], peer["ttft_p95"]),
              f"e2e_p95_c{HEADLINE_CLIENTS}": ratio(app["e2e_p95"], peer["e2e_p95"])}
    if one_app is not None and one_peer is not None:
        ratios["e2e_p50_c1"] = ratio(one_app["e2e_p50"], one_peer["e2e_p50"])
    return ratios


def summarize(suite: Any) -> tuple[dict[str, Any], str]:
    figures = {name: stack_figures(report) for name, report in suite.runs.items()}
    results = {"runs": figures,
               "vs": {app: {other: _ratios(figures, app, other) for other in STACKS
                            if other != app} for app in APPS}}
    lines = [*stack_rows(figures), "", *route_rows(figures, "route_e2e_p95", "e2e p95 s"), "",
             *route_rows(figures, "route_within_slo", "share within SLO"), "",
             "| ratio (app stack / other stack) | value |", "|---|---:|"]
    lines += [f"| {app}: {name} vs {other} | {fmt(value)} |"
              for app, others in results["vs"].items() for other, ratios in others.items()
              for name, value in ratios.items()]
    peers = figures.get(label(PEER, HEADLINE_CLIENTS))
    apps = {app: figures[label(app, HEADLINE_CLIENTS)] for app in APPS
            if peers is not None and label(app, HEADLINE_CLIENTS) in figures}
    if apps:
        results.update(goals=GOALS, goals_met={app: goals_met(f, peers)
                                               for app, f in apps.items()})
    for app, figure in apps.items():
        lines += ["", *goal_rows(figure, peers, results["goals_met"][app], HEADLINE_CLIENTS,
                                 app)]
    return results, "\n".join(lines) + "\n"


def stack_rows(figures: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| stack | clients | req/s | within SLO req/s | out tok/s | TTFT p50 s | "
             "TTFT p95 s | e2e p50 s | e2e p95 s | errors |", "|---|---:|" + "---:|" * 8]
    for run_label, f in figures.items():
        lines.append(f"| {run_label.rsplit('-c', 1)[0]} | {f['clients']} | "
                     f"{f['request_throughput']:.2f} | {fmt(f['goodput_requests_per_s'])} | "
                     f"{f['output_tokens_per_s']:.1f} | "
                     f"{fmt(f['ttft_p50'])} | {fmt(f['ttft_p95'])} | {fmt(f['e2e_p50'])} | "
                     f"{fmt(f['e2e_p95'])} | {f['errors']} |")
    return lines


def route_rows(figures: dict[str, dict[str, Any]], key: str, name: str) -> list[str]:
    """Every route's figure `key` at 16 clients, one column per stack."""
    stacks = [s for s in STACKS if label(s, HEADLINE_CLIENTS) in figures]
    routes = sorted({r for s in stacks for r in figures[label(s, HEADLINE_CLIENTS)][key]})
    lines = [f"| {name} at {HEADLINE_CLIENTS} clients | " + " | ".join(stacks) + " |",
             "|---|" + "---:|" * len(stacks)]
    for route in routes:
        cells = [fmt(figures[label(s, HEADLINE_CLIENTS)][key].get(route)) for s in stacks]
        lines.append(f"| {route} | " + " | ".join(cells) + " |")
    return lines


HEADLINE = (("request_throughput", "req/s"), ("goodput_requests_per_s", "within SLO req/s"),
            ("output_tokens_per_s", "out tok/s"),
            ("ttft_p50", "TTFT p50 s"), ("ttft_p95", "TTFT p95 s"), ("e2e_p95", "e2e p95 s"),
            ("errors", "errors"))


def across_rounds(merged: dict[str, Any], rounds: list[Any]) -> str:
    """At 16 clients, each stack's median (min-max) across rounds, side by side: the
    headline figures, then every route's e2e p95 and share within its objective."""
    runs = merged.get("runs") or {}
    stacks = [s for s in STACKS if label(s, HEADLINE_CLIENTS) in runs]
    if not stacks:
        return ""
    columns = [runs[label(s, HEADLINE_CLIENTS)] for s in stacks]
    lines = [f"## Mixed workload at {HEADLINE_CLIENTS} clients, across {len(rounds)} rounds",
             "", "Median of the rounds (min-max); every round's values are in the table below "
             "and in each round's section.", "",
             "| metric | " + " | ".join(stacks) + " |", "|---|" + "---:|" * len(stacks)]
    for key, name in HEADLINE:
        lines.append(f"| {name} | " + " | ".join(_cell(c.get(key)) for c in columns) + " |")
    for key, name in (("route_e2e_p95", "e2e p95 s"), ("route_within_slo", "within SLO")):
        routes = sorted({r for c in columns for r in (c.get(key) or {})})
        for route in routes:
            lines.append(f"| {route} {name} | " + " | ".join(
                _cell((c.get(key) or {}).get(route)) for c in columns) + " |")
    lines += ["", "Stacks: " + "; ".join(f"`{s}`: {STACKS[s]}" for s in stacks) + "."]
    return "\n".join(lines) + "\n"


def _cell(node: Any) -> str:
    if isinstance(node, dict) and "median" in node:
        return median_range(node)
    return "-"
