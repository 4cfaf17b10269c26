"""Streaming chat on each text engine against that engine's own offline throughput, and what
prefix caching gains on a multi-turn conversation.

Side by side in each round (every configuration once a round; rounds alternate:
bench/rounds.py):
1. The `chat` workload (200-word prompts, 64 output tokens, streamed with usage, temperature 0)
   at 8 and at 16 clients after a 10 s warm-up, on the default profile `cpu` (vLLM), and on
   `cpu-transformers` (the app's own engine) in bfloat16, its default, and in float32; each
   beside the same engine's offline throughput on one batch of 16 of the same workload's chats
   (bench/llm_offline.py, measured in this run with no server up). Goals (issue 13): served
   output tokens/s at least 0.8x offline, TTFT p95 under 2 s. Goodput counts the requests whose
   TTFT is at most 2 s. Beside it, the engine offline at a batch of 8, the most that 8
   closed-loop clients ever have in flight: what 8 streams could get at best.
2. The `multi-turn` workload (a 400-word system prompt shared by all, 4 turns) at 8 clients
   on `cpu-transformers` with the transformers engine's prefix caching on (its default), then
   off: TTFT p50 and p95.

A change of the text engine's settings is a change of the app's builder args: the app is
redeployed on the same cluster (its replicas restart) rather than started again.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import llm_offline
from bench.app_launcher import Target, redeploy, running_app
from bench.load import LoadSpec
from bench.rounds import DEFAULT_ROUNDS
from bench.suites.common import Round, Suite, chat_row, fmt, ratio
from bench.workloads import Workload, build_workload
from cluster.deploy import with_args

CLIENTS = (8, 16)
PREFIX_CLIENTS = 8
WARMUP_S = 10.0
SLO = {"ttft": 2.0}
GOALS = {"served_vs_offline": 0.8, "ttft_p95_below_s": 2.0}
F32 = {"text": {"engine": {"dtype": "float32"}}}
PREFIX_OFF = {"text": {"engine": {"enable_prefix_caching": False}}}
# configuration: (profile, builder args merged into the profile's)
ENGINES: dict[str, tuple[str, dict[str, Any]]] = {
    "transformers-float32": ("cpu-transformers", F32),
    "transformers-bfloat16": ("cpu-transformers", {}),
    "vllm": ("cpu", {}),
}
PREFIX_RUNS = {"on": "multi-turn-prefix-cache-on", "off": "multi-turn-prefix-cache-off"}


def chat_workload() -> Workload:
    """The issue's streaming chat: ~200 prompt tokens, 64 output tokens, greedy (the same
    sampling as the offline reference)."""
    workload = build_workload("chat", {"prompt_len": "200", "output_len": "64", "stream": True,
                                       "seed": 0})
    return replace(workload, temperature=0.0)


def run(command: str, out: Path | None, duration_s: float,
        rounds: int = DEFAULT_ROUNDS) -> dict[str, Any]:
    chat, multi_turn = chat_workload(), build_workload("multi-turn", {"seed": 0})
    suite = Suite("llm", command, out, duration_s, rounds)
    spec = {c: LoadSpec(concurrency=c, duration_s=duration_s, warmup_s=WARMUP_S)
            for c in CLIENTS}

    def one_round(round_: Round) -> tuple[dict[str, Any], str]:
        """Every configuration once: offline and served, each engine in turn."""
        transformers = ("transformers-float32", "transformers-bfloat16")
        offline = {name: _offline(name, chat) for name in transformers}
        same_batch = {name: _offline_at_clients(name, chat) for name in transformers}
        with running_app("cpu-transformers") as app:
            _chat_runs(round_, "transformers-bfloat16", app, chat, spec)
            round_.run(PREFIX_RUNS["on"], app, multi_turn, spec[PREFIX_CLIENTS], SLO)
            round_.run(PREFIX_RUNS["off"], _with_args(app, PREFIX_OFF), multi_turn,
                       spec[PREFIX_CLIENTS], SLO)
            _chat_runs(round_, "transformers-float32", _with_args(app, F32), chat, spec)
        offline["vllm"] = _offline("vllm", chat)
        same_batch["vllm"] = _offline_at_clients("vllm", chat)
        with running_app("cpu") as app:
            _chat_runs(round_, "vllm", app, chat, spec)
        round_.extra["offline"] = offline
        return summarize(round_, offline, same_batch)

    return suite.in_rounds(one_round)


def _offline(name: str, chat: Workload, batch: int = llm_offline.BATCH) -> dict[str, Any]:
    profile, args = ENGINES[name]
    return llm_offline.measure(profile, chat, args, batch=batch)


def _offline_at_clients(name: str, chat: Workload) -> dict[int, dict[str, Any]]:
    """The engine offline at a batch of each client count below the reference batch: what
    that many closed-loop clients could get at most, never having more requests in flight."""
    return {clients: _offline(name, chat, clients) for clients in CLIENTS
            if clients < llm_offline.BATCH}


def _with_args(app: Target, args: dict[str, Any]) -> Target:
    """The app redeployed with its first config's builder args and these merged in."""
    return redeploy(replace(app, config=with_args(app.config, args)), [])


def _chat_runs(suite: Round, engine: str, app: Target, workload: Workload,
               spec: dict[int, LoadSpec]) -> None:
    for clients in CLIENTS:
        suite.run(f"{engine}-c{clients}", app, workload, spec[clients], SLO)


def summarize(suite: Any, offline: dict[str, dict[str, Any]],
              same_batch: dict[str, dict[int, dict[str, Any]]] | None = None,
              ) -> tuple[dict[str, Any], str]:
    """`offline`: each engine at the reference batch (16); `same_batch`: at smaller batches,
    by client count (a batch of 16 is the reference itself)."""
    same_batch = same_batch or {}
    chat: dict[str, Any] = {}
    for engine in ENGINES:
        for clients in CLIENTS:
            report = suite.runs.get(f"{engine}-c{clients}")
            if report is None:
                continue
            row = chat_row(report)
            row["offline_tokens_per_s"] = offline[engine]["tokens_per_s"]
            row["served_vs_offline"] = ratio(row["output_tokens_per_s"],
                                             row["offline_tokens_per_s"])
            row["goal_served_vs_offline_met"] = (row["served_vs_offline"] is not None and
                                                 row["served_vs_offline"] >=
                                                 GOALS["served_vs_offline"])
            row["goal_ttft_p95_met"] = (row["ttft_p95"] is not None and
                                        row["ttft_p95"] < GOALS["ttft_p95_below_s"])
            same = same_batch.get(engine, {}).get(clients)
            if same is None and clients == offline[engine]["batch"]:
                same = offline[engine]
            row["offline_same_batch_tokens_per_s"] = same and same["tokens_per_s"]
            row["served_vs_offline_same_batch"] = ratio(row["output_tokens_per_s"],
                                                        row["offline_same_batch_tokens_per_s"])
            chat[f"{engine}-c{clients}"] = row
    prefix = {state: chat_row(suite.runs[label]) for state, label in PREFIX_RUNS.items()
              if label in suite.runs}
    if len(prefix) == 2:
        for q in ("p50", "p95"):
            prefix[f"ttft_{q}_off_vs_on"] = ratio(prefix["off"][f"ttft_{q}"],
                                                  prefix["on"][f"ttft_{q}"])
    results = {"slo": SLO, "goals": GOALS, "offline": offline,
               "offline_at_clients": same_batch, "chat": chat, "prefix_caching": prefix}
    measured = {**offline, **{f"{label} (batch {clients})": m
                              for label, by_clients in same_batch.items()
                              for clients, m in by_clients.items()}}
    lines = [*_chat_lines(chat), "", *_offline_lines(measured), "", *_prefix_lines(prefix)]
    return results, "\n".join(lines) + "\n"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _chat_lines(chat: dict[str, Any]) -> list[str]:
    lines = ["Streaming chat (~200 prompt tokens, 64 output tokens, temperature 0); goodput: "
             f"requests with TTFT <= {SLO['ttft']:g} s.", "",
             "| configuration | clients | out tok/s | TTFT p50 s | TTFT p95 s | ITL p50 s | "
             "errors | goodput req/s | good | offline batch 16 tok/s | served / offline | "
             f">= {GOALS['served_vs_offline']} | TTFT p95 < {GOALS['ttft_p95_below_s']:g} s | "
             "offline batch = clients tok/s | served / that |",
             "|---|---:|" + "---:|" * 9 + "---|---|---:|---:|"]
    for label, r in chat.items():
        good = r["goodput_fraction"]
        lines.append(
            f"| {label.rsplit('-c', 1)[0]} | {r['clients']} | {r['output_tokens_per_s']:.1f} | "
            f"{fmt(r['ttft_p50'])} | {fmt(r['ttft_p95'])} | {fmt(r['itl_p50'], 3)} | "
            f"{r['errors']} | {fmt(r['goodput_requests_per_s'])} | "
            f"{'-' if good is None else f'{100 * good:.0f}%'} | "
            f"{r['offline_tokens_per_s']:.1f} | {fmt(r['served_vs_offline'])} | "
            f"{_met(r['goal_served_vs_offline_met'])} | {_met(r['goal_ttft_p95_met'])} | "
            f"{fmt(r['offline_same_batch_tokens_per_s'], 1)} | "
            f"{fmt(r['served_vs_offline_same_batch'])} |")
    return lines


def _offline_lines(offline: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["Offline, one batch of 16 (or of the client count, where named) of the same chats, "
             "no server (bench/llm_offline.py):", "",
             "| engine | profile | dtype | threads | prompt tokens | output tokens | s | "
             "tok/s |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for label, m in offline.items():
        lines.append(f"| {label} | {m['profile']} | {m['dtype']} | {m['threads']} | "
                     f"{m['prompt_tokens']} | {m['output_tokens']} | {m['seconds']:.1f} | "
                     f"{m['tokens_per_s']:.1f} |")
    return lines


def _prefix_lines(prefix: dict[str, Any]) -> list[str]:
    lines = [f"Prefix caching, `multi-turn` workload, {PREFIX_CLIENTS} clients, "
             "`cpu-transformers` (off: `text.engine.enable_prefix_caching: false`):", "",
             "| prefix caching | TTFT p50 s | TTFT p95 s | out tok/s | errors |",
             "|---|---:|---:|---:|---:|"]
    for state in ("on", "off"):
        if state in prefix:
            r = prefix[state]
            lines.append(f"| {state} | {fmt(r['ttft_p50'])} | {fmt(r['ttft_p95'])} | "
                         f"{r['output_tokens_per_s']:.1f} | {r['errors']} |")
    if "ttft_p50_off_vs_on" in prefix:
        lines += ["", f"TTFT off / on: p50 {fmt(prefix['ttft_p50_off_vs_on'])}, "
                      f"p95 {fmt(prefix['ttft_p95_off_vs_on'])} (above 1: caching helps)."]
    return lines
