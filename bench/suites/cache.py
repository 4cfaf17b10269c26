"""The response cache (serve_app/cache.py): what a hit costs at the ingress, and what the cache
gains on a workload where half the inputs repeat.

Side by side in one run, on one app (PROFILE: the default profile's ingress and vision group;
its text group runs on transformers, which starts in seconds where vLLM takes minutes, and no
text is served here), the cache switched through the app's `cache:` args (a redeploy: every
replica restarts, the ingress with an empty in-process cache):

1. The hit path. With the cache in process, then in a redis-server this suite starts on a free
   loopback port: one text and one image embedding, the same input in every request (the
   warm-up computes it once), at 1 client (sequential) and at 16 (concurrent). Per run: the
   latency at the ingress, p50 and p99 (the `total` entry of the answer's Server-Timing
   header; the client's latency where the server sends none), the client's own p50 and p99,
   and the share of answers that said `X-Cache: hit`. Goal: p99 at the ingress under 5 ms.
2. Throughput with repeats: image embeddings at 16 clients, half of them one of 8 pool images,
   half a fresh image (workload `embedding-repeats`, bench/workloads/repeats.py), cache on
   against off. The machine drifts, so the two alternate (on, off, on, off; half the duration
   each, fresh inputs drawn with a new seed each time) and their halves are averaged. Reported:
   images/s, e2e p50 and p95 each, the hit share seen in X-Cache, and the on/off throughput
   ratio beside its ideal, 1 / (1 - hit share) (hits free, misses as costly as without a
   cache).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.app_launcher import running_app
from bench.load import LoadSpec
from bench.rounds import DEFAULT_ROUNDS
from bench.suites.common import Round, Suite, fmt, overall, quantile, ratio
from bench.suites.headers import ms, run_recorded, with_app_args
from bench.workloads.repeats import RepeatedEmbeddingWorkload
from cluster.redis_server import RedisServer

PROFILE = "cpu-transformers"
HIT_CLIENTS = (1, 16)
HIT_MEDIA = ("text", "image")
HIT_WARMUP_S = 3.0
REPEAT_CLIENTS = 16
REPEAT_SHARE = 0.5
REPEAT_POOL = 8
REPEAT_WARMUP_S = 10.0
BACKENDS = ("memory", "redis")
CACHE_OFF = {"enabled": False, "redis_url": None}
CACHE_IN_PROCESS = {"enabled": True, "redis_url": None}
# The goal, lower is better: an embeddings hit's p99 at the ingress, in milliseconds.
TARGETS = {"hit_p99_at_ingress_ms": 5.0}
REPEAT_ORDER = (("on", 1), ("off", 1), ("on", 2), ("off", 2))


def hit_label(backend: str, media: str, clients: int) -> str:
    return f"hit-{backend}-{media}-c{clients}"


def repeat_label(state: str, half: int) -> str:
    return f"repeats-cache-{state}-{half}"


def run(command: str, out: Path | None, duration_s: float,
        rounds: int = DEFAULT_ROUNDS) -> dict[str, Any]:
    suite = Suite("cache", command, out, duration_s, rounds)
    hit_spec = {c: LoadSpec(concurrency=c, duration_s=duration_s / 4, warmup_s=HIT_WARMUP_S)
                for c in HIT_CLIENTS}
    repeats = RepeatedEmbeddingWorkload(repeat_share=REPEAT_SHARE, pool_size=REPEAT_POOL,
                                        media="image")
    suite.extra["profile"] = PROFILE
    with running_redis() as redis_settings, running_app(PROFILE) as app:
        suite.extra["cache_settings"] = {"memory": CACHE_IN_PROCESS,
                                         "redis": {"enabled": True, **redis_settings}}

        def one_round(round_: Round) -> tuple[dict[str, Any], str]:
            for backend in BACKENDS:
                target = with_app_args(app, {"cache": suite.extra["cache_settings"][backend]})
                for media in HIT_MEDIA:
                    same_input = RepeatedEmbeddingWorkload(repeat_share=1.0, pool_size=1,
                                                           media=media,
                                                           route=f"{media}-embedding")
                    for clients, spec in hit_spec.items():
                        run_recorded(round_, hit_label(backend, media, clients), target,
                                     same_input, spec)
            for i, (state, half) in enumerate(REPEAT_ORDER):
                cache = CACHE_IN_PROCESS if state == "on" else CACHE_OFF
                # Fresh inputs drawn with a new seed in every half of every round.
                spec = LoadSpec(concurrency=REPEAT_CLIENTS, duration_s=duration_s / 2,
                                warmup_s=REPEAT_WARMUP_S, seed=(round_.number - 1) * 10 + i)
                run_recorded(round_, repeat_label(state, half),
                             with_app_args(app, {"cache": cache}), repeats, spec)
            return summarize(round_)

        return suite.in_rounds(one_round)


@contextmanager
def running_redis() -> Iterator[dict[str, Any]]:
    """redis-server on a free loopback port, its files in a temp dir (cluster/redis_server.py);
    yields the `cache:` fields that use it (its URL, the file of the secret that signs the
    entries) and stops it by its own PID after."""
    if shutil.which("redis-server") is None:
        raise SystemExit("the cache suite needs redis-server (make system-deps installs it)")
    with tempfile.TemporaryDirectory(prefix="mmserve-bench-redis-") as folder:
        server = RedisServer(Path(folder)).start()
        try:
            yield server.cache_settings()
        finally:
            server.kill()


def hit_row(report: dict[str, Any]) -> dict[str, Any]:
    headers = report["response_headers"]
    return {"clients": report["load"]["concurrency"],
            "requests_per_s": overall(report)["request_throughput"],
            "responses": headers["responses"], "errors": overall(report)["requests"]["errors"],
            "hit_share": headers["hit_share"],
            "ingress_p50_ms": ms(headers["ingress"], "p50"),
            "ingress_p99_ms": ms(headers["ingress"], "p99"),
            "ingress_source": headers["ingress_source"],
            "client_p50_ms": ms(headers["client_e2e"], "p50"),
            "client_p99_ms": ms(headers["client_e2e"], "p99")}


def repeat_row(report: dict[str, Any]) -> dict[str, Any]:
    return {"images_per_s": overall(report)["item_throughput"],
            "e2e_p50_s": quantile(report, "e2e", "p50"),
            "e2e_p95_s": quantile(report, "e2e", "p95"),
            "errors": overall(report)["requests"]["errors"],
            "hit_share": report["response_headers"]["hit_share"],
            "x_cache": report["response_headers"]["x_cache"]}


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known and len(known) == len(values) else None


def summarize(suite: Any) -> tuple[dict[str, Any], str]:
    hits = {label: hit_row(r) for label, r in suite.runs.items() if label.startswith("hit-")}
    halves = {label: repeat_row(r) for label, r in suite.runs.items()
              if label.startswith("repeats-")}
    means = {state: {key: _mean([row[key] for label, row in halves.items()
                                 if label.startswith(f"repeats-cache-{state}-")])
                     for key in ("images_per_s", "e2e_p50_s", "e2e_p95_s", "hit_share")}
             for state in ("on", "off")}
    hit_share = means["on"]["hit_share"]
    ratios = {"throughput_on_vs_off": ratio(means["on"]["images_per_s"],
                                            means["off"]["images_per_s"]),
              "ideal_throughput_on_vs_off": None if hit_share is None or hit_share >= 1
              else 1 / (1 - hit_share),
              "e2e_p50_on_vs_off": ratio(means["on"]["e2e_p50_s"], means["off"]["e2e_p50_s"]),
              "e2e_p95_on_vs_off": ratio(means["on"]["e2e_p95_s"], means["off"]["e2e_p95_s"])}
    worst = max((row["ingress_p99_ms"] for row in hits.values()
                 if row["ingress_p99_ms"] is not None), default=None)
    goal = TARGETS["hit_p99_at_ingress_ms"]
    met = {"hit_p99_at_ingress_ms": worst is not None and worst < goal}
    duration = getattr(suite, "duration_s", None)
    lines = [f"Profile `{PROFILE}`. " + ("" if duration is None else
             f"Hit runs: {duration / 4:g} s measured each after a {HIT_WARMUP_S:g} s warm-up; "
             f"repeats: {duration / 2:g} s a half after a {REPEAT_WARMUP_S:g} s warm-up."), "",
             "Hit path: the same input in every request, after a warm-up that computed it.",
             "", "| run | clients | req/s | hit share | ingress p50 ms | ingress p99 ms | "
             "client p50 ms | client p99 ms | errors | p99 at ingress < "
             f"{goal:g} ms |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for label, row in hits.items():
        verdict = "-" if row["ingress_p99_ms"] is None else (
            "met" if row["ingress_p99_ms"] < goal else "NOT met")
        lines.append(f"| {label} | {row['clients']} | {row['requests_per_s']:.1f} | "
                     f"{_share(row['hit_share'])} | {fmt(row['ingress_p50_ms'])} | "
                     f"{fmt(row['ingress_p99_ms'])} | {fmt(row['client_p50_ms'])} | "
                     f"{fmt(row['client_p99_ms'])} | {row['errors']} | {verdict} |")
    sources = sorted({row["ingress_source"] for row in hits.values()})
    lines += ["", f"Ingress latency read from: {', '.join(sources) or '-'}.", "",
              f"Throughput: image embeddings at {REPEAT_CLIENTS} clients, "
              f"{100 * REPEAT_SHARE:.0f}% of requests one of {REPEAT_POOL} pool images, the rest "
              "fresh; cache in process, on and off alternating.", "",
              "| run | images/s | e2e p50 s | e2e p95 s | hit share | X-Cache | errors |",
              "|---|---:|---:|---:|---:|---|---:|"]
    for label, row in halves.items():
        lines.append(f"| {label} | {row['images_per_s']:.2f} | {fmt(row['e2e_p50_s'], 3)} | "
                     f"{fmt(row['e2e_p95_s'], 3)} | {_share(row['hit_share'])} | "
                     f"{_verdicts(row['x_cache'])} | {row['errors']} |")
    for state in ("on", "off"):
        m = means[state]
        lines.append(f"| cache {state} (mean of both halves) | {fmt(m['images_per_s'])} | "
                     f"{fmt(m['e2e_p50_s'], 3)} | {fmt(m['e2e_p95_s'], 3)} | "
                     f"{_share(m['hit_share'])} | | |")
    lines += ["", "| ratio | value | goal |", "|---|---:|---|"]
    lines += [f"| {name} | {fmt(value)} | |" for name, value in ratios.items()]
    lines.append(f"| worst hit p99 at the ingress, ms | {fmt(worst)} | < {goal:g}: "
                 f"{'met' if met['hit_p99_at_ingress_ms'] else 'NOT met'} |")
    results = {"profile": PROFILE, "hit_path": hits, "repeats": halves, "repeats_mean": means,
               "ratios": ratios, "worst_hit_p99_at_ingress_ms": worst, "goals": TARGETS,
               "goals_met": met}
    return results, "\n".join(lines) + "\n"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _verdicts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items()) or "-"
