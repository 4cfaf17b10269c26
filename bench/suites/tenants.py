"""Tenants: what one team's flood does to another, batch against interactive, the limits across
two ingress replicas, and the usage bill against what the clients were told
(docs/security.md, docs/scheduling.md).

One app for the whole run: the default profile `cpu` with TWO ingress replicas, a tenants file
and the project's real Redis. The suite starts redis-server on a free loopback port with a
random password (cluster/redis_server.py: in a 0600 config file), gives the app its URL and
the password's file (`cache.redis_url`, `cache.redis_password`; the response cache stays off),
so the limits' buckets and the usage totals live there, shared by both ingress replicas. The
tenants file is made in a private temporary folder: a key per tenant from
serve_app.tenant_keys (only digests in the file); the keys stay in this process's memory, go to
the load's client actors in memory, and are redacted from every file written (bench/redact.py).
Every tenant has at least one per-minute limit, so every answer its limits let through or
turned away carries `x-ratelimit-*` and the client can tell what was admitted
(bench/refusals.py). Each round (bench/suites/tenants_summary.py does the arithmetic):

1. capacity: image embeddings in a closed loop at 16 and 32 clients, the whole --duration each
   after a 10 s warm-up; the most requests/s either answered is the capacity (as the slo
   suite measures it). The round's limits follow from it and are written into the tenants
   file, and the suite waits until the answers tell the new limits (each ingress replica reads
   the file again within 2 s).
2. isolation, (a) then (b): `team-b` alone, image embeddings, an open Poisson loop at 0.15x
   the capacity (its quota twice that: never reached); then the same arrivals (same seed)
   beside `team-a`, an open loop at 3x the capacity, 4x its requests_per_minute (0.75x the
   capacity). A bucket holds a minute of its limit, so a flood that met a full bucket would
   first be let in at 3x the capacity for about 20 s and leave minutes of backlog; a flood
   that has gone on for a while meets an empty bucket. So before (b) `team-a`'s bucket is
   emptied by GETs of /v1/usage (admitted and charged like any request, answered 403 without
   a model call) and kept empty by them until the flood starts (bench/tenant_api.py).
   15 s warm-up, --duration measured. Goals: `team-b`'s within-SLO requests/s (its route's
   objective: the app's 2 s for embeddings) at least 0.95x alone, its e2e p95 at most 1.3x;
   `team-a` gets limits refusals (429), each with a Retry-After.
   Retry-After honoured: while the flood goes on, a retry after the Retry-After competes with
   the flood's own next requests for the one request the bucket has refilled, and loses to
   them as often as not: a failure that says nothing of the Retry-After. So the retries are
   made once the flood has stopped: the flood's last second is cut into N equal slots, and
   the first limits refusal in each is sent again once, its Retry-After after its answer
   (bench/client_actor.py). Retry-After is whole seconds, at least 1, so every retry comes
   after the flood's last request, when only the retries draw from `team-a`'s bucket, and N
   is at most half of what the bucket refills in a second (and at most 20), so the retries,
   spread over about a second, never take each other's request. Goal: every retry admitted
   by the limits (their answers, 200 or not, are reported beside).
3. priorities, (c): `interactive` (an interactive tenant) at 0.15x the capacity alone, then
   the same arrivals beside `batch` (a batch tenant, no limit reached) at 2x the capacity,
   image embeddings, 15 s warm-up each. Goals: the interactive e2e p95 under the overload at
   most 1.5x unloaded; the interactive tenant shed nothing (no 429 or 503 but its limits',
   and it has none in reach), the batch tenant got the 429s and 503s.
4. limits across the two ingress replicas, (d): through the app's one HTTP address (HAProxy
   and Serve's proxy spread the requests over both ingress replicas), text embeddings from
   `limited-requests` (300 requests/min) and `limited-tokens` (3000 tokens/min, a text
   embedding's words being its tokens), each offered 4x its limit. A full bucket lets a
   minute's worth through at once; a flood that emptied it itself would have been let in at 4x
   for 20 s, more model work than the app keeps up with on the 2-core machine, and the ingress
   would then shed the flood for being full before its limits saw it: the bucket would not
   empty, and the window would measure the app's overload. So the buckets are
   emptied first: the requests bucket by GETs answered 403, the tokens bucket by one text
   embedding of as many words as it holds (read from x-ratelimit-remaining-tokens). A 10 s
   warm-up at 4x takes what they refilled while the load started, and the window (--duration)
   opens on an empty bucket, when what is accepted is what the bucket refills: the accepted
   rate over the window (requests sent in it and admitted; their answers' tokens) against the
   configured one, goal within 5%. A request is taken from its bucket at admission, so the
   requests' count is exact to a request at each end of the window; tokens are charged when
   an answer ends and a request is let in while the bucket is above zero, so it lets in what
   arrives within one answer's latency L before the charges land: the window's count is off
   by at most one such cycle, 14 + 4 x 50 tokens/s x L (about 2% of a 30 s window at
   L = 0.1 s; shorter windows read it larger). The report gives the first refusal's time in
   the window (near 0: it opened on an empty bucket) and the share of `limited-requests`'
   admitted requests each ingress replica counted (ray_mmserve_tenant_requests_total by
   replica); goal: both counted some.
5. usage, (e): `usage-mix` sends chats (streamed, usage included), text and image embeddings
   and transcriptions at 1 request/s during (d). After the round, GET /v1/usage with the
   `admin` tenant's key: each tenant's change over the round (requests, prompt and completion
   tokens, images, audio seconds) against what its clients were told over every request of
   the round, warm-ups, retries and the suite's own GETs included (the requests admitted,
   the answers' usage fields, the images sent in the embeddings answered, the durations of
   the clips transcribed); goal: every count within 1%. The admin, whose own GETs read the
   totals, is left out.

Every run starts once the app is idle (bench/idle.py: no deployment holds or queues a
request), so none measures what the overload before it left queued. Reported per round and
across rounds (median, min-max); every goal a verdict of every round (bench/rounds.py). About
9 min a round at the default --duration of 30 s on the 2-core machine (under 30 min for three
rounds), plus the app's start once (vLLM's, 2-3 min); a round at --duration 10s took 6 min.
"""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.app_launcher import Target, running_app
from bench.idle import wait_until_idle
from bench.load import LoadSpec
from bench.records import RequestRecord
from bench.redact import register_secret
from bench.rounds import DEFAULT_ROUNDS
from bench.run import ray_for_clients
from bench.suites import tenants_summary as summary
from bench.suites.common import Round, Suite
from bench.tenant_api import (
    BucketKeeper,
    empty_requests_bucket,
    empty_tokens_bucket,
    usage_report,
    wait_for_limit,
)
from bench.tenant_figures import told_usage
from bench.tenant_keyring import Keyring
from bench.tenant_load import TenantLoad, execute_tenant_run
from bench.workloads import build_workload
from bench.workloads.embeddings import ImageEmbeddingWorkload, TextEmbeddingWorkload
from cluster.redis_server import RedisServer

PROFILE = "cpu"
INGRESS_REPLICAS = 2
WARMUP_S = 15.0
CAPACITY_WARMUP_S = 10.0
# At 4x the limit, what an emptied bucket refilled while the load started is gone in seconds.
LIMITS_WARMUP_S = 10.0
RELOAD_WAIT_S = 2.5  # the ingress reads a changed tenants file at most every 2 s
USAGE_SETTLE_S = 3.0  # each ingress replica writes its counts to Redis within 1 s
MIX = "chat=1,text-embedding=1,image-embedding=1,transcription=1"
UNLIMITED = {"requests_per_minute": summary.UNLIMITED_PER_MINUTE}
TENANTS: dict[str, dict[str, Any]] = {
    summary.CAPACITY: UNLIMITED, summary.FLOODER: UNLIMITED, summary.STEADY: UNLIMITED,
    summary.INTERACTIVE: {**UNLIMITED, "priority": "interactive"},
    summary.BATCH: {**UNLIMITED, "priority": "batch"},
    summary.LIMITED: {"requests_per_minute": summary.LIMITED_REQUESTS_PER_MINUTE},
    summary.TOKENS: {"tokens_per_minute": summary.LIMITED_TOKENS_PER_MINUTE},
    summary.MIXED: UNLIMITED, summary.ADMIN: {"admin": True}}


def run(command: str, out: Path | None, duration_s: float,
        rounds: int = DEFAULT_ROUNDS) -> dict[str, Any]:
    if shutil.which("redis-server") is None:
        raise SystemExit("the tenants suite needs redis-server (make system-deps installs it)")
    suite = Suite("tenants", command, out, duration_s, rounds)
    suite.extra.update(profile=PROFILE, ingress_replicas=INGRESS_REPLICAS, tenants=TENANTS,
                       mix=MIX)
    with tempfile.TemporaryDirectory(prefix="mmserve-bench-tenants-") as folder:
        keyring = Keyring(Path(folder), TENANTS)
        redis = RedisServer(_private_folder(Path(folder) / "redis"),
                            password=secrets.token_urlsafe(24))
        register_secret(redis.password)
        redis.start()
        try:
            with running_app(PROFILE, args=app_args(keyring, redis)) as app:
                rounds_run = RoundRunner(app, keyring, duration_s)
                return suite.in_rounds(rounds_run.one_round, summary.across_rounds)
        finally:
            redis.kill()


def _private_folder(path: Path) -> Path:
    path.mkdir(mode=0o700)
    return path


def app_args(keyring: Keyring, redis: RedisServer) -> dict[str, Any]:
    """Two ingress replicas, the tenants file, and the Redis of the limits and the usage."""
    return {"ingress": {"autoscaling": {"min_replicas": INGRESS_REPLICAS,
                                        "max_replicas": INGRESS_REPLICAS},
                        "tenants": {"file": str(keyring.path)}},
            "cache": redis.cache_settings()}


class RoundRunner:
    def __init__(self, app: Target, keyring: Keyring, duration_s: float) -> None:
        self.app, self.keyring, self.duration_s = app, keyring, duration_s
        self.image, self.text = ImageEmbeddingWorkload(), TextEmbeddingWorkload()
        self.mix = build_workload("mixed", {"mix": MIX, "prompt_len": "uniform:16,32",
                                            "output_len": "uniform:8,16"})

    def load(self, tenant: str, workload: Any, spec: LoadSpec) -> TenantLoad:
        return TenantLoad(tenant, workload, spec, self.keyring.key(tenant))

    def open_loop(self, rate: float, seed: int, warmup_s: float = WARMUP_S,
                  **options: Any) -> LoadSpec:
        return LoadSpec(concurrency=0, rate=rate, duration_s=self.duration_s,
                        warmup_s=warmup_s, seed=seed, **options)

    def one_round(self, round_: Round) -> tuple[dict[str, Any], str]:
        url, admin = self.app.url, self.keyring.key(summary.ADMIN)
        own: dict[str, list[RequestRecord]] = defaultdict(list)  # the suite's own requests
        before = summary.usage_totals(usage_report(url, admin))
        plan = self.measure_capacity(round_)
        round_.extra["plan"] = plan.as_dict()
        self.set_limits(plan, own)
        steady = self.open_loop(plan.steady_rate, seed=round_.number)
        own[summary.FLOODER] += self.isolation(round_, plan, steady)
        self.priorities(round_, plan, steady)
        self.limits_and_usage(round_, plan, own)
        time.sleep(USAGE_SETTLE_S)
        after = summary.usage_totals(usage_report(url, admin))
        round_.extra.update(usage_server={"before": before, "after": after},
                            out_of_band={t: told_usage(r) for t, r in sorted(own.items())})
        return summary.summarize(round_)

    def isolation(self, round_: Round, plan: summary.RoundPlan,
                  steady: LoadSpec) -> list[RequestRecord]:
        """(a) team-b alone, (b) beside team-a's flood, which meets an empty bucket; the
        records of the requests that emptied it."""
        run_tenants(round_, summary.ALONE, self.app,
                    [self.load(summary.STEADY, self.image, steady)])
        flood = self.open_loop(plan.flood_rate, seed=1000 + round_.number,
                               retry_refusals=plan.retry_sample)
        with BucketKeeper(self.app.url, self.keyring.key(summary.FLOODER),
                          plan.flood_requests_per_minute / 60) as keeper:
            run_tenants(round_, summary.FLOOD, self.app,
                        [self.load(summary.FLOODER, self.image, flood),
                         self.load(summary.STEADY, self.image, steady)], keeper.stop_at)
        return keeper.records

    def priorities(self, round_: Round, plan: summary.RoundPlan, steady: LoadSpec) -> None:
        """(c) the interactive tenant alone, then beside the batch tenant's overload."""
        run_tenants(round_, summary.INTERACTIVE_ALONE, self.app,
                    [self.load(summary.INTERACTIVE, self.image, steady)])
        batch = self.open_loop(plan.batch_rate, seed=2000 + round_.number)
        run_tenants(round_, summary.WITH_BATCH, self.app,
                    [self.load(summary.INTERACTIVE, self.image, steady),
                     self.load(summary.BATCH, self.image, batch)])

    def measure_capacity(self, round_: Round) -> summary.RoundPlan:
        levels = []
        for clients in summary.CAPACITY_CLIENTS:
            spec = LoadSpec(concurrency=clients, duration_s=self.duration_s,
                            warmup_s=CAPACITY_WARMUP_S, seed=round_.number)
            reports = run_tenants(round_, summary.capacity_label(clients), self.app,
                                  [self.load(summary.CAPACITY, self.image, spec)])
            levels.append(reports[summary.CAPACITY])
        return summary.round_plan(summary.capacity_of(levels))

    def set_limits(self, plan: summary.RoundPlan, own: dict[str, list[RequestRecord]]) -> None:
        """The round's quotas for team-a and team-b, in force on both ingress replicas."""
        quotas = {summary.FLOODER: plan.flood_requests_per_minute,
                  summary.STEADY: plan.steady_requests_per_minute}
        self.keyring.update({tenant: {"requests_per_minute": per_minute}
                             for tenant, per_minute in quotas.items()})
        time.sleep(RELOAD_WAIT_S)
        for tenant, per_minute in quotas.items():
            own[tenant] += wait_for_limit(self.app.url, self.keyring.key(tenant), per_minute)

    def limits_and_usage(self, round_: Round, plan: summary.RoundPlan,
                         own: dict[str, list[RequestRecord]]) -> None:
        """(d) both limited tenants past their limits, their buckets emptied first, and (e)
        the usage tenant's mix."""
        url, seed = self.app.url, 3000 + round_.number
        own[summary.LIMITED] += empty_requests_bucket(url, self.keyring.key(summary.LIMITED))
        own[summary.TOKENS] += empty_tokens_bucket(url, self.keyring.key(summary.TOKENS),
                                                   self.text.model)
        run_tenants(round_, summary.LIMITS, self.app, [
            self.load(summary.LIMITED, self.text,
                      self.open_loop(plan.limited_rate, seed, LIMITS_WARMUP_S)),
            self.load(summary.TOKENS, self.text,
                      self.open_loop(plan.tokens_rate, seed + 1, LIMITS_WARMUP_S)),
            self.load(summary.MIXED, self.mix,
                      self.open_loop(plan.mixed_rate, seed + 2, LIMITS_WARMUP_S))])


def run_tenants(round_: Round, label: str, target: Target, loads: list[TenantLoad],
                on_start: Callable[[float], None] | None = None) -> dict[str, dict[str, Any]]:
    """The loads at once, each tenant's report kept in the round as `<label>-<tenant>`, once
    the app is idle (bench/idle.py: what an overload before left queued is served first)."""
    waited = wait_until_idle(target.metrics_urls)
    round_.extra.setdefault("idle_wait_s", {})[label] = waited
    print(f"{round_.name} {label}: the app was idle after "
          f"{'-' if waited is None else f'{waited:.0f}'} s", file=sys.stderr, flush=True)
    with ray_for_clients(target, None):
        reports = execute_tenant_run(target, loads, name=f"{round_.name}-{label}",
                                     command=round_.command, out=round_.out,
                                     on_start=on_start)
    for tenant, report in reports.items():
        round_.runs[summary.run_key(label, tenant)] = report
        overall, figures = report["metrics"]["overall"], report["tenant"]
        print(f"== {round_.name} {label} {tenant}: {overall['request_throughput']:.2f} req/s "
              f"answered, e2e p95 {(overall['e2e'] or {}).get('p95', float('nan')):.3f} s, "
              f"admitted {figures['admitted']}, refused by limits "
              f"{figures['limits_refusals']}, shed {figures['shed']}, retries "
              f"{figures['retries']}", file=sys.stderr, flush=True)
    return reports
