"""Whisper transcription of real speech: real-time factor at 1 and at 8 concurrent clients,
on the app (default `cpu` profile: one audio replica, batching up to 8) and on the baseline;
app then baseline in each round, over alternated rounds (bench/rounds.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.app_launcher import running_app, running_baseline
from bench.load import LoadSpec
from bench.rounds import DEFAULT_ROUNDS
from bench.suites.common import Round, Suite, fmt, overall, quantile
from bench.workloads import build_workload

CLIENTS = (1, 8)


def run(command: str, out: Path | None, duration_s: float,
        rounds: int = DEFAULT_ROUNDS) -> dict[str, Any]:
    suite = Suite("whisper", command, out, duration_s, rounds)
    workload = build_workload("transcription", {})

    def one_round(round_: Round) -> tuple[dict[str, Any], str]:
        with running_app("cpu") as app:
            for clients in CLIENTS:
                round_.run(f"app-c{clients}", app, workload,
                           LoadSpec(concurrency=clients, duration_s=duration_s, warmup_s=10.0))
        with running_baseline(threads=1) as baseline:
            for clients in CLIENTS:
                round_.run(f"baseline-c{clients}", baseline, workload,
                           LoadSpec(concurrency=clients, duration_s=duration_s, warmup_s=10.0))
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
              "(below 1 keeps up with real time)."]
    return results, "\n".join(lines) + "\n"
