"""Whisper transcription of real speech: real-time factor at 1 and at 8 concurrent clients, in
alternated rounds (bench/rounds.py), each round on:

1. `app`: the default `cpu` profile: one audio replica (one thread), batching up to 8;
2. `app-capacity`: the same with the capacity allocator on (`capacity.enabled`,
   docs/scheduling.md) and the audio group allowed a second replica: while speech is all the
   app serves, the allocator gives the audio group the CPU the idle groups leave in the pool;
3. `baseline`: the threadpool server (bench/baseline_server.py), one CTranslate2 thread per
   call and as many calls at once as clients, on both cores.

Goal, every round: each app configuration at 8 clients transcribes at least 1.2x the audio
seconds per second of the baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.app_launcher import running_app, running_baseline
from bench.load import LoadSpec
from bench.rounds import DEFAULT_ROUNDS
from bench.suites.common import Round, Suite, fmt, overall, quantile
from bench.suites.goals import at_least, ratio
from bench.workloads import build_workload

CLIENTS = (1, 8)
GOAL_CLIENTS, GOAL_VS_BASELINE = 8, 1.2
APPS = ("app", "app-capacity")
CAPACITY_ARGS = {"capacity": {"enabled": True},
                 "audio": {"autoscaling": {"min_replicas": 1, "max_replicas": 2,
                                           "target_ongoing_requests": 8}}}


def run(command: str, out: Path | None, duration_s: float,
        rounds: int = DEFAULT_ROUNDS) -> dict[str, Any]:
    suite = Suite("whisper", command, out, duration_s, rounds)
    workload = build_workload("transcription", {})

    starts = {"app": lambda: running_app("cpu"),
              "app-capacity": lambda: running_app("cpu", args=CAPACITY_ARGS),
              "baseline": lambda: running_baseline(threads=1)}

    def one_round(round_: Round) -> tuple[dict[str, Any], str]:
        for name, start in starts.items():
            with start() as target:
                for clients in CLIENTS:
                    round_.run(f"{name}-c{clients}", target, workload,
                               LoadSpec(concurrency=clients, duration_s=duration_s,
                                        warmup_s=10.0))
        return summarize(round_)

    return suite.in_rounds(one_round)


def summarize(suite: Any) -> tuple[dict[str, Any], str]:
    results: dict[str, Any] = {}
    lines = ["| configuration | clients | RTF p50 | RTF p95 | aggregate RTF | audio s per s | "
             "req/s | e2e p95 s | WER | mean batch |", "|---|---:|" + "---:|" * 8]
    for label, report in suite.runs.items():
        o = overall(report)
        batch = report["server"].get("summary", {}).get("batch_size", {})
        results[label] = {"clients": report["load"]["concurrency"],
                          "rtf_p50": quantile(report, "rtf", "p50"),
                          "rtf_p95": quantile(report, "rtf", "p95"),
                          "aggregate_rtf": o["aggregate_rtf"],
                          "audio_seconds_per_s": o["audio_seconds_per_s"],
                          "request_throughput": o["request_throughput"],
                          "wer_mean": o["wer_mean"],
                          "mean_batch": batch.get("SpeechTranscriber/transcribe")}
        r = results[label]
        lines.append(f"| {label} | {r['clients']} | {fmt(r['rtf_p50'], 3)} | "
                     f"{fmt(r['rtf_p95'], 3)} | {fmt(r['aggregate_rtf'], 3)} | "
                     f"{fmt(r['audio_seconds_per_s'])} | {fmt(r['request_throughput'])} | "
                     f"{fmt(quantile(report, 'e2e', 'p95'))} | {fmt(r['wer_mean'], 3)} | "
                     f"{fmt(r['mean_batch'])} |")
    lines += ["", "RTF: seconds of processing per second of audio, per request (latency / clip "
              "length); aggregate RTF: measured window / audio seconds transcribed in it "
              "(below 1 keeps up with real time).", "", *goal_lines(results)]
    return results, "\n".join(lines) + "\n"


def goal_lines(results: dict[str, Any]) -> list[str]:
    """Adds each app configuration's audio seconds per second over the baseline's at
    GOAL_CLIENTS, and whether it meets GOAL_VS_BASELINE, to `results`; the lines that say so."""
    baseline = results.get(f"baseline-c{GOAL_CLIENTS}")
    if baseline is None:
        return []
    lines = [f"| at {GOAL_CLIENTS} clients | audio s per s / baseline | "
             f">= {GOAL_VS_BASELINE:g}x |", "|---|---:|---|"]
    for app in APPS:
        run = results.get(f"{app}-c{GOAL_CLIENTS}")
        if run is None:
            continue
        seconds, base = run["audio_seconds_per_s"], baseline["audio_seconds_per_s"]
        met = at_least(seconds, base, GOAL_VS_BASELINE)
        results.setdefault("vs_baseline", {})[app] = ratio(seconds, base)
        results.setdefault("goals_met", {})[f"{app}_at_least_1_2x_baseline"] = met
        lines.append(f"| {app} | {fmt(ratio(seconds, base))} | {'met' if met else 'NOT met'} |")
    return lines
