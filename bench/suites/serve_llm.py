"""The app's vLLM text group against Ray's own LLM stack, `ray.serve.llm`: same model, same
engine settings, same client (issue 13).

One stack at a time on a fresh local Ray head of 2 logical CPUs, as running_app starts one:
1. the app from the default profile `cpu` (its text group: vLLM in the vLLM venv);
2. `ray.serve.llm`'s OpenAI app (bench/ray_serve_llm.py) serving the same model folder with the
   vLLM arguments the app's engine builds from the same profile, the same runtime_env and the
   same CPU share.
Each round starts and measures one, then the other (rounds alternate: bench/rounds.py).
Each serves the `chat` workload of the llm suite (~200-word prompts, 64 output tokens,
temperature 0, streamed with usage) at 8 and at 32 streams after a 10 s warm-up. Compared:
output tokens/s and TTFT p95; the goal is the app ahead on both at both stream counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.app_launcher import running_app
from bench.load import LoadSpec
from bench.ray_serve_llm import PROFILE, llm_config, running_ray_serve_llm
from bench.rounds import DEFAULT_ROUNDS
from bench.suites.common import Round, Suite, chat_row, fmt, ratio
from bench.suites.llm import chat_workload

CLIENTS = (8, 32)
WARMUP_S = 10.0
SLO = {"ttft": 2.0}
STACKS = {"app": f"mmserve, profile `{PROFILE}` (vLLM text group)",
          "ray-serve-llm": "ray.serve.llm (build_openai_app)"}


def run(command: str, out: Path | None, duration_s: float,
        rounds: int = DEFAULT_ROUNDS) -> dict[str, Any]:
    chat = chat_workload()
    suite = Suite("serve-llm", command, out, duration_s, rounds)
    spec = {c: LoadSpec(concurrency=c, duration_s=duration_s, warmup_s=WARMUP_S)
            for c in CLIENTS}
    suite.extra["ray_serve_llm"] = {"llm_config": llm_config(PROFILE)}

    def one_round(round_: Round) -> tuple[dict[str, Any], str]:
        with running_app(PROFILE) as app:
            for clients in CLIENTS:
                round_.run(f"app-c{clients}", app, chat, spec[clients], SLO)
        with running_ray_serve_llm(PROFILE) as anchor:
            for clients in CLIENTS:
                round_.run(f"ray-serve-llm-c{clients}", anchor, chat, spec[clients], SLO)
        return summarize(round_)

    return suite.in_rounds(one_round)


def _leads(app: dict[str, Any], anchor: dict[str, Any]) -> dict[str, Any]:
    """The app against ray.serve.llm at one stream count: ratios app / ray.serve.llm (tokens/s:
    above 1 leads; TTFT p95: below 1 leads)."""
    tokens = ratio(app["output_tokens_per_s"], anchor["output_tokens_per_s"])
    ttft = ratio(app["ttft_p95"], anchor["ttft_p95"])
    clean = app["errors"] == 0
    leads_tokens = tokens is not None and tokens > 1 and clean
    leads_ttft = ttft is not None and ttft < 1 and clean
    return {"output_tokens_per_s_app_vs_ray": tokens, "ttft_p95_app_vs_ray": ttft,
            "app_leads_output_tokens_per_s": leads_tokens, "app_leads_ttft_p95": leads_ttft,
            "app_leads_both": leads_tokens and leads_ttft}


def summarize(suite: Any) -> tuple[dict[str, Any], str]:
    rows = {label: chat_row(suite.runs[label]) for label in
            (f"{stack}-c{c}" for stack in STACKS for c in CLIENTS) if label in suite.runs}
    compared = {c: _leads(rows[f"app-c{c}"], rows[f"ray-serve-llm-c{c}"]) for c in CLIENTS
                if f"app-c{c}" in rows and f"ray-serve-llm-c{c}" in rows}
    goal_met = len(compared) == len(CLIENTS) and all(
        c["app_leads_both"] for c in compared.values())
    results = {"slo": SLO, "stacks": STACKS, "runs": rows,
               "app_vs_ray_serve_llm": {str(c): v for c, v in compared.items()},
               "goal": "the app leads on output tokens/s and TTFT p95 at 8 and 32 streams",
               "goal_met": goal_met}
    lines = [*_run_lines(rows), "", *_compare_lines(compared, goal_met)]
    return results, "\n".join(lines) + "\n"


def _run_lines(rows: dict[str, Any]) -> list[str]:
    lines = ["Streaming chat (~200 prompt tokens, 64 output tokens, temperature 0), the same "
             "client against each stack in turn; goodput: requests with TTFT <= "
             f"{SLO['ttft']:g} s.", "",
             "| stack | streams | out tok/s | TTFT p50 s | TTFT p95 s | ITL p50 s | requests | "
             "errors | prompt tok/req | out tok/req | good |",
             "|---|---:|" + "---:|" * 9]
    for label, r in rows.items():
        good = r["goodput_fraction"]
        lines.append(
            f"| {STACKS[label.rsplit('-c', 1)[0]]} | {r['clients']} | "
            f"{r['output_tokens_per_s']:.1f} | {fmt(r['ttft_p50'])} | {fmt(r['ttft_p95'])} | "
            f"{fmt(r['itl_p50'], 3)} | {r['requests']} | {r['errors']} | "
            f"{fmt(r['prompt_tokens_per_request'], 1)} | "
            f"{fmt(r['output_tokens_per_request'], 1)} | "
            f"{'-' if good is None else f'{100 * good:.0f}%'} |")
    return lines


def _compare_lines(compared: dict[int, dict[str, Any]], goal_met: bool) -> list[str]:
    lines = ["The app against ray.serve.llm (app / ray.serve.llm; tokens/s above 1 and TTFT p95 "
             "below 1 mean the app leads):", "",
             "| streams | out tok/s ratio | TTFT p95 ratio | app leads tok/s | "
             "app leads TTFT p95 |", "|---:|---:|---:|---|---|"]
    for clients, c in compared.items():
        lines.append(f"| {clients} | {fmt(c['output_tokens_per_s_app_vs_ray'])} | "
                     f"{fmt(c['ttft_p95_app_vs_ray'])} | "
                     f"{_yes(c['app_leads_output_tokens_per_s'])} | "
                     f"{_yes(c['app_leads_ttft_p95'])} |")
    lines += ["", f"Goal (the app leads on both at {' and '.join(map(str, CLIENTS))} streams): "
                  f"{'met' if goal_met else 'NOT met'}."]
    return lines


def _yes(ok: bool) -> str:
    return "yes" if ok else "no"
