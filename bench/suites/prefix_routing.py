"""Prefix-aware against default routing with two text replicas, on the multi-turn workload.

Side by side in one run, on the `cpu-transformers` profile (the app's transformers engine in
bfloat16, half a CPU and one thread per replica) with the text group at two replicas, the
same `multi-turn` workload with `context: own` (each conversation opens with an 800-word system
prompt of its own, then 4 turns; seed 0) and client (8 streams, 10 s warm-up) under each
`text.routing`, each replica's prefix cache 128 MiB (about five conversations' KV: less than
the eight running, as a GPU's KV cache is less than the conversations it serves), each client
pausing 0-4 s (2 s on average) after an answer, as a user reads it before the next turn:
- `default`: Serve's power of two choices;
- `prefix`: the app's router (deployments/replicas/prefix_router.py), each conversation to
  one replica;
- `ray_prefix`: Ray's PrefixCacheAffinityRouter, adapted
  (deployments/replicas/ray_prefix_router.py).
Changing the routing changes the text replicas' arguments, so each mode starts on fresh
replicas, their prefix caches empty.

Reported per mode: TTFT p50 and p95, goodput (requests with TTFT <= 2 s, per second) and the
prefix-cache hit rate: prompt tokens found in the prefix cache of the replica a request landed
on, over all prompt tokens, counted by the replicas themselves (each replica's
`engine_stats()` before and after the run, warm-up included). Every conversation's turns
repeat its earlier ones and nothing is shared across conversations, so the rate is the share of
prompt tokens that landed on the replica holding their conversation. (With one system prompt
shared by every conversation, both replicas cache it under any routing and the rest of a
conversation is a small part of its prompt: routing then changes little, which a first run of
this suite measured; bench/results/prefix-routing/README.md.)
Each replica's share of the prompt tokens says how evenly the load was split.
Goals (issue 14): prefix routing's TTFT p50 at least 40% below default's, goodput not lower.
"""

from __future__ import annotations

import pickle
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.app_launcher import Target, redeploy, running_app
from bench.load import LoadSpec
from bench.rounds import DEFAULT_ROUNDS
from bench.suites.common import Round, Suite, chat_row, fmt, ratio
from cluster.deploy import with_args

PROFILE = "cpu-transformers"
APP_NAME = "mmserve"
TEXT = "TextGenerator"
MODES = ("default", "prefix", "ray_prefix")
CLIENTS = 8
WARMUP_S = 10.0
SLO = {"ttft": 2.0}
GOALS = {"ttft_p50_vs_default_at_most": 0.6, "goodput_vs_default_at_least": 1.0}
CONTEXT_WORDS = 800
# A user reads an answer before the next turn. Without a pause, a closed loop's next turn finds
# the replica its last turn just left the less loaded of two, and Serve's default router sends
# it back there: conversations stick to their replica by accident (measured: the same 66% of
# prompt tokens from the prefix cache under default and prefix routing, at 97983fe).
THINK_S = 2.0
PREFIX_CACHE_MIB = 128
TWO_REPLICAS = {"engine": {"prefix_cache_mib": PREFIX_CACHE_MIB},
                "autoscaling": {"min_replicas": 2, "max_replicas": 2,
                                "target_ongoing_requests": 16}}
HIT, LOOKED_UP = "prefix_cache_hit_tokens", "prefix_cache_looked_up_tokens"


def run(command: str, out: Path | None, duration_s: float,
        rounds: int = DEFAULT_ROUNDS) -> dict[str, Any]:
    import ray

    from bench.workloads import build_workload

    workload = build_workload("multi-turn", {"seed": 0, "context": "own",
                                             "system_prompt_len": CONTEXT_WORDS})
    suite = Suite("prefix-routing", command, out, duration_s, rounds)
    spec = LoadSpec(concurrency=CLIENTS, duration_s=duration_s, think_s=THINK_S,
                    warmup_s=min(WARMUP_S, duration_s))  # a short smoke: a short warm-up
    with running_app(PROFILE) as app:
        # One driver connection for the client actors and the replica counts.
        ray.init(address=app.ray_address, logging_level="ERROR", log_to_driver=False)

        def one_round(round_: Round) -> tuple[dict[str, Any], str]:
            counts: dict[str, dict[str, dict[str, int]]] = {}
            for mode in MODES:
                target = with_routing(app, mode)
                before = replica_answers(target.dashboard_url, APP_NAME, TEXT, "engine_stats")
                round_.run(mode, target, workload, spec, SLO)
                after = replica_answers(target.dashboard_url, APP_NAME, TEXT, "engine_stats")
                counts[mode] = {replica: {key: after[replica].get(key, 0) -
                                          before.get(replica, {}).get(key, 0)
                                          for key in (HIT, LOOKED_UP)} for replica in after}
            round_.extra["replica_counts"] = counts
            return summarize(round_, counts)

        return suite.in_rounds(one_round)


def with_routing(app: Target, mode: str) -> Target:
    """The app redeployed with two text replicas routed by `mode`; returns once both run."""
    from bench.replica_kill import ReplicaView

    target = redeploy(replace(app, config=with_args(app.config, {
        "text": {**TWO_REPLICAS, "routing": mode}})), [])
    view = ReplicaView(target.dashboard_url, APP_NAME)
    deadline = time.monotonic() + 300
    while not (len(view.running(TEXT)) == 2 and len(view.replicas(TEXT)) == 2):
        if time.monotonic() > deadline:
            raise TimeoutError("the text group did not reach two running replicas in 300 s")
        time.sleep(1)
    return target


def replica_answers(dashboard_url: str, app_name: str, deployment: str,
                    method: str) -> dict[str, Any]:
    """{replica id: `method`()'s answer} from each running replica of `deployment`, each
    asked directly through its actor (a handle would route every call to one of them).
    Needs a driver connected to the app's cluster."""
    import ray
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient
    from ray.serve._private.common import RequestMetadata
    from ray.serve._private.constants import SERVE_NAMESPACE

    details = ServeSubmissionClient(dashboard_url).get_serve_details()
    entries = details["applications"][app_name]["deployments"][deployment]["replicas"]
    calls = {}
    for entry in entries:
        if entry["state"] != "RUNNING" or not entry.get("actor_name"):
            continue
        actor = ray.get_actor(entry["actor_name"], namespace=SERVE_NAMESPACE)
        request_id = uuid.uuid4().hex
        metadata = RequestMetadata(request_id=request_id, internal_request_id=request_id,
                                   call_method=method, app_name=app_name)
        calls[entry["replica_id"]] = actor.handle_request.remote(pickle.dumps(metadata))
    return {replica: ray.get(call, timeout=60) for replica, call in calls.items()}


def summarize(suite: Any, counts: dict[str, dict[str, dict[str, int]]],
              ) -> tuple[dict[str, Any], str]:
    rows: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        report = suite.runs.get(mode)
        if report is None:
            continue
        row = chat_row(report)
        replicas = counts.get(mode, {})
        hit = sum(c[HIT] for c in replicas.values())
        looked_up = sum(c[LOOKED_UP] for c in replicas.values())
        row["prefix_hit_rate"] = hit / looked_up if looked_up else None
        row["replica_token_shares"] = sorted(
            (c[LOOKED_UP] / looked_up for c in replicas.values()), reverse=True) \
            if looked_up else []
        rows[mode] = row
    base = rows.get("default")
    for mode, row in rows.items():
        if base is None or mode == "default":
            continue
        row["ttft_p50_vs_default"] = ratio(row["ttft_p50"], base["ttft_p50"])
        row["ttft_p95_vs_default"] = ratio(row["ttft_p95"], base["ttft_p95"])
        row["goodput_vs_default"] = ratio(row["goodput_requests_per_s"],
                                          base["goodput_requests_per_s"])
        row["goal_ttft_p50_met"] = (row["ttft_p50_vs_default"] is not None and
                                    row["ttft_p50_vs_default"] <=
                                    GOALS["ttft_p50_vs_default_at_most"])
        row["goal_goodput_met"] = (row["goodput_vs_default"] is not None and
                                   row["goodput_vs_default"] >=
                                   GOALS["goodput_vs_default_at_least"])
    results = {"slo": SLO, "goals": GOALS, "clients": CLIENTS, "profile": PROFILE,
               "modes": rows}
    return results, "\n".join(_lines(rows)) + "\n"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _met(row: dict[str, Any], goal: str) -> str:
    if goal not in row:
        return "-"
    return "met" if row[goal] else "NOT met"


def _lines(rows: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"`multi-turn` workload, each conversation its own {CONTEXT_WORDS}-word system "
             f"prompt, 4 turns; {CLIENTS} streams, `{PROFILE}` with two text replicas, "
             f"{PREFIX_CACHE_MIB} MiB of prefix cache each, {THINK_S:g} s mean think time; "
             f"goodput: "
             f"requests with TTFT <= "
             f"{SLO['ttft']:g} s. Prefix hits: prompt tokens found in the prefix cache of the "
             "replica the request landed on (replica-side counts, warm-up included).", "",
             "| routing | TTFT p50 s | TTFT p95 s | goodput req/s | good | out tok/s | errors | "
             "prefix hits | replica token shares | p50 / default | p95 / default | goodput / "
             "default | p50 goal | goodput goal |",
             "|---|" + "---:|" * 11 + "---|---|"]
    for mode, r in rows.items():
        shares = " / ".join(_pct(s) for s in r["replica_token_shares"]) or "-"
        lines.append(
            f"| {mode} | {fmt(r['ttft_p50'])} | {fmt(r['ttft_p95'])} | "
            f"{fmt(r['goodput_requests_per_s'])} | {_pct(r['goodput_fraction'])} | "
            f"{r['output_tokens_per_s']:.1f} | {r['errors']} | {_pct(r['prefix_hit_rate'])} | "
            f"{shares} | {fmt(r.get('ttft_p50_vs_default'))} | "
            f"{fmt(r.get('ttft_p95_vs_default'))} | {fmt(r.get('goodput_vs_default'))} | "
            f"{_met(r, 'goal_ttft_p50_met')} | {_met(r, 'goal_goodput_met')} |")
    return lines
