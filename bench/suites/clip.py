"""CLIP image embeddings at 32 concurrent clients against the ceiling of this machine.

Side by side in each round: the offline batched throughput of the same model in one process
(one and two threads, and two one-thread processes at once; batch 16; measured first in the
round), the app on the `clip` profile (two one-thread replicas) behind
Serve's HAProxy ingress with batching on, off (max_batch_size 1, applied live through
user_config), on and off again; the app as `make serve` runs it (the default `cpu` profile
behind HAProxy, vision scaling 1 -> 2 under its queue policy) at 32 clients and at 1, then
redeployed with `slo.scheduling: slo` (docs/scheduling.md) at 32, and the default profile
behind Serve's Python proxy (`make serve INGRESS=proxy`) at 32;
and the plain FastAPI baseline (sync endpoints in its threadpool, one torch thread, then two)
at 32 clients, and at 1 with one thread.

This machine's speed drifts by 10-20% within minutes, so the configurations alternate over
rounds (bench/rounds.py: each round measures every one of them, a goal is met only when every
round meets it) and, within a round, batching on and off alternate (on, off, on, off: each
half the duration; their halves are averaged).

The two-core ceiling has two layouts: one process with two threads, and two one-thread
processes (the app's layout: two replicas). Both are reported, with the app's ratio to each;
the goals are checked against the stricter, the faster of the two.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import cpu_accounting
from bench.app_launcher import redeploy, running_app, running_baseline
from bench.ceiling import measure_in_subprocess, measure_processes
from bench.environment import uptime
from bench.load import LoadSpec
from bench.rounds import DEFAULT_ROUNDS
from bench.suites.common import Round, Suite, fmt, overall, quantile, ratio
from bench.suites.headers import with_app_args
from bench.workloads import Workload, build_workload

CLIENTS = 32
BATCH_OFF = [{"name": "ImageEmbedder",
              "user_config": {"max_batch_size": 1, "batch_wait_timeout_s": 0.0}}]
# The goals. The ceilings are checked at the stricter of the two-core layouts (one
# process of two threads, two processes of one): the faster of the two in that round.
TARGETS = {"app_vs_two_core_ceiling": 0.85, "batching_on_vs_off": 1.5,
           "default_profile_vs_best_baseline": 1.1,
           "default_profile_slo_vs_best_baseline": 1.1,
           "default_profile_vs_two_core_ceiling": 0.9}
# Lower is better: the default profile's p50 at one client over the baseline's.
P50_TARGET = {"default_profile_c1_p50_vs_baseline": 1.25}
DEFAULT_RUN, DEFAULT_C1_RUN, BASELINE_C1_RUN = ("app-default-profile", "app-default-profile-c1",
                                                "baseline-1-thread-c1")
DEFAULT_PROXY_RUN = "app-default-profile-python-proxy"
DEFAULT_SLO_RUN = "app-default-profile-slo"
SLO_ARGS = {"slo": {"scheduling": "slo"}}
CEILING_BATCHES = 16  # of 16 images: 15-30 s a measurement here


def run(command: str, out: Path | None, duration_s: float,
        rounds: int = DEFAULT_ROUNDS) -> dict[str, Any]:
    suite = Suite("clip", command, out, duration_s, rounds)
    workload = build_workload("image-embedding", {"seed": 0})

    def one_round(round_: Round) -> tuple[dict[str, Any], str]:
        ceiling = _ceilings()
        round_.extra["ceiling_measurements"] = [ceiling]
        _servers(round_, workload, duration_s)
        return summarize(round_, ceiling)

    return suite.in_rounds(one_round)


def _servers(round_: Round, workload: Workload, duration_s: float) -> None:
    """Every served configuration once, in the same order each round."""
    spec = LoadSpec(concurrency=CLIENTS, duration_s=duration_s, warmup_s=10.0)
    half = LoadSpec(concurrency=CLIENTS, duration_s=duration_s / 2, warmup_s=10.0)
    with running_app("clip", ingress="haproxy") as app:
        batch_on = [{"name": "ImageEmbedder",
                     "user_config": app.config["applications"][0]["args"]["vision"]["batching"]}]
        before_cpu, busy = cpu_accounting.snapshot(), cpu_accounting.machine_busy()
        round_.run("app-batching-on-1", app, workload, half)
        round_.extra["cpu_during_app_batching_on"] = cpu_accounting.usage(
            before_cpu, cpu_accounting.snapshot(), busy, cpu_accounting.machine_busy())
        for label, overrides in (("off-1", BATCH_OFF), ("on-2", batch_on), ("off-2", BATCH_OFF)):
            round_.run(f"app-batching-{label}", redeploy(app, overrides), workload, half)
    with running_app("cpu") as app:
        round_.run(DEFAULT_RUN, app, workload, spec)
        round_.run(DEFAULT_C1_RUN, app, workload, replace(spec, concurrency=1))
        round_.run(DEFAULT_SLO_RUN, with_app_args(app, SLO_ARGS), workload, spec)
    with running_app("cpu", ingress="proxy") as app:
        round_.run(DEFAULT_PROXY_RUN, app, workload, spec)
    for threads in (1, 2):
        with running_baseline(threads=threads) as baseline:
            round_.run(f"baseline-{threads}-thread", baseline, workload, spec)
            if threads == 1:
                round_.run(BASELINE_C1_RUN, baseline, workload, replace(spec, concurrency=1))


def _pick(ceilings: list[dict[str, Any]], rank: int) -> dict[str, Any]:
    """Per configuration, the measurement of that rank by images/s (1: median of 3, 2: best)."""
    return {name: sorted((c[name] for c in ceilings), key=lambda m: m["images_per_s"])[rank]
            for name in ceilings[0]}


def _ceilings() -> dict[str, Any]:
    """One process with 1 and with 2 threads, and two 1-thread processes at once (the layout
    of the app's two replicas; two threads in one process collapse when the cores are busy)."""
    measured = {"1_thread": measure_in_subprocess(1, batches=CEILING_BATCHES),
                "2_thread": measure_in_subprocess(2, batches=CEILING_BATCHES),
                "2_processes": measure_processes(2, batches=CEILING_BATCHES),
                "1_thread_batch_1": measure_in_subprocess(1, batch=1, batches=96)}
    load = uptime()
    return {name: {**m, "uptime": load} for name, m in measured.items()}


def _cpu_lines(cpu: dict[str, Any]) -> list[str]:
    if not cpu.get("cpu_seconds_by_process"):
        return []
    busy = cpu["machine_busy_fraction"]
    lines = ["", f"Where the CPU went during app-batching-on-1 ({cpu['machine_cpu_seconds']:.0f} "
             f"CPU-seconds of wall time on all cores, {100 * busy:.0f}% busy; processes of "
             "other users of the machine included):", "",
             "| process | CPU s |", "|---|---:|"]
    return lines + [f"| `{title}` | {seconds:.1f} |"
                    for title, seconds in cpu["cpu_seconds_by_process"].items()]


def _goal(name: str, met: dict[str, bool]) -> str:
    if name in TARGETS:
        return f">= {TARGETS[name]}: {'met' if met[name] else 'NOT met'}"
    if name in P50_TARGET:
        return f"<= {P50_TARGET[name]}: {'met' if met[name] else 'NOT met'}"
    return ""


def summarize(suite: Any, ceiling: dict[str, Any],
              best: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """`ceiling`: the ceiling the goals are checked against; `best`: the best of several
    measurements, reported beside it (None: one measurement, the ceiling itself)."""
    one_measurement = best is None
    best = best or ceiling
    images = {label: overall(r)["item_throughput"] for label, r in suite.runs.items()}
    on = _mean(images, "app-batching-on")
    off = _mean(images, "app-batching-off")
    one = ceiling["1_thread"]["images_per_s"]
    best_baseline = max(images["baseline-1-thread"], images["baseline-2-thread"])

    def both_cores(c: dict[str, Any]) -> float:  # the better layout of the two cores
        return max(c["2_thread"]["images_per_s"], c["2_processes"]["images_per_s"])

    ratios = {
        "app_vs_two_thread_ceiling": ratio(on, ceiling["2_thread"]["images_per_s"]),
        "app_vs_two_process_ceiling": ratio(on, ceiling["2_processes"]["images_per_s"]),
        "app_vs_two_core_ceiling": ratio(on, both_cores(ceiling)),
        **({} if one_measurement else {
            "app_vs_two_thread_ceiling_best": ratio(on, best["2_thread"]["images_per_s"]),
            "app_vs_two_core_ceiling_best": ratio(on, both_cores(best))}),
        "app_vs_one_thread_ceiling": ratio(on, one),
        "batching_on_vs_off": ratio(on, off),
        "clip_profile_haproxy_vs_default_profile": ratio(on, images[DEFAULT_RUN]),
        "default_profile_haproxy_vs_python_proxy": ratio(images[DEFAULT_RUN],
                                                         images.get(DEFAULT_PROXY_RUN)),
        "default_profile_vs_best_baseline": ratio(images[DEFAULT_RUN], best_baseline),
        "default_profile_slo_vs_best_baseline": ratio(images.get(DEFAULT_SLO_RUN),
                                                      best_baseline),
        "default_profile_vs_two_thread_ceiling": ratio(images[DEFAULT_RUN],
                                                       ceiling["2_thread"]["images_per_s"]),
        "default_profile_vs_two_process_ceiling": ratio(
            images[DEFAULT_RUN], ceiling["2_processes"]["images_per_s"]),
        "default_profile_vs_two_core_ceiling": ratio(images[DEFAULT_RUN], both_cores(ceiling)),
        "default_profile_c1_p50_vs_baseline": ratio(
            quantile(suite.runs[DEFAULT_C1_RUN], "e2e", "p50"),
            quantile(suite.runs[BASELINE_C1_RUN], "e2e", "p50")),
        "app_vs_baseline_1_thread": ratio(on, images["baseline-1-thread"]),
        "app_vs_baseline_2_thread": ratio(on, images["baseline-2-thread"]),
        "baseline_1_thread_vs_one_thread_ceiling": ratio(images["baseline-1-thread"], one),
        "offline_batch_16_vs_batch_1": ratio(one, ceiling["1_thread_batch_1"]["images_per_s"]),
    }
    met = {name: ratios[name] is not None and ratios[name] >= goal
           for name, goal in TARGETS.items()}
    met.update({name: ratios[name] is not None and ratios[name] <= goal
                for name, goal in P50_TARGET.items()})
    lines = ["| configuration (32 clients unless -c1) | images/s | e2e p50 s | e2e p95 s | "
             "e2e p99 s | mean batch |", "|---|---:|---:|---:|---:|---:|",
             *_ceiling_rows(ceiling, None if one_measurement else best),
             *_run_rows(suite, images),
             f"| app, batching on (mean of both halves) | {on:.2f} | | | | |",
             f"| app, batching off (mean of both halves) | {off:.2f} | | | | |", "",
             "| ratio | value | goal |", "|---|---:|---:|"]
    lines += [f"| {name} | {fmt(value)} | {_goal(name, met)} |" for name, value in ratios.items()]
    lines += ["", "The two-core ceiling (`two_core`) is the stricter, the faster, of one process "
              "with two threads (`two_thread`) and two one-thread processes (`two_process`); "
              "the goals are checked against it."]
    lines += _cpu_lines(suite.extra.get("cpu_during_app_batching_on") or {})
    return {"images_per_s": {**images, "app-batching-on": on, "app-batching-off": off},
            "ratios": ratios, "goals": {**TARGETS, **P50_TARGET}, "goals_met": met,
            "ceiling": ceiling, "ceiling_best": best}, "\n".join(lines) + "\n"


def _mean(images: dict[str, float], prefix: str) -> float:
    halves = [value for label, value in images.items() if label.startswith(prefix)]
    return sum(halves) / len(halves)


def _ceiling_rows(ceiling: dict[str, Any], best: dict[str, Any] | None) -> list[str]:
    names = {"1_thread_batch_1": "1 process, 1 thread, batch 1",
             "1_thread": "1 process, 1 thread, batch 16",
             "2_thread": "1 process, 2 threads, batch 16",
             "2_processes": "2 processes, 1 thread each, batch 16"}
    def which(key: str) -> str:
        return ("this round" if best is None
                else f"median of 3; best {best[key]['images_per_s']:.2f}")

    return [f"| offline: {names[key]} ({which(key)}) | "
            f"{ceiling[key]['images_per_s']:.2f} | - | - | - | - |" for key in names]


def _run_rows(suite: Suite, images: dict[str, float]) -> list[str]:
    rows = []
    for label, report in suite.runs.items():
        batch = report["server"].get("summary", {}).get("batch_size", {})
        mean_batch = batch.get("ImageEmbedder/embed_image")
        rows.append(f"| {label} | {images[label]:.2f} | {fmt(quantile(report, 'e2e', 'p50'))} | "
                    f"{fmt(quantile(report, 'e2e', 'p95'))} | "
                    f"{fmt(quantile(report, 'e2e', 'p99'))} | {fmt(mean_batch)} |")
    return rows
