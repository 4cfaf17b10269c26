"""The tenants suite's arithmetic (bench/suites/tenants.py runs it): each round's rates and
limits from the capacity it measured, each run's figures, the goals, per round and across
rounds. No Ray here, so the unit tier checks it on synthetic reports.

A round's runs are keyed `<run>-<tenant>`; each report carries `tenant`, that tenant's figures
(bench/tenant_figures.py). The round's extras carry the usage totals the app reported before
and after the round (`usage_server`) and what the suite's own requests told (`out_of_band`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from bench.capacity import measured_capacity
from bench.rounds import median_range, number
from bench.suites.goals import at_least, ratio
from bench.tenant_figures import USAGE_COUNTS, add_told

# Tenants, by their part in a round.
CAPACITY, FLOODER, STEADY = "capacity", "team-a", "team-b"
INTERACTIVE, BATCH = "interactive", "batch"
LIMITED, TOKENS, MIXED, ADMIN = "limited-requests", "limited-tokens", "usage-mix", "admin"
# Runs, in a round's order.
ALONE, FLOOD = "alone", "flood"
INTERACTIVE_ALONE, WITH_BATCH = "interactive-alone", "interactive-batch"
LIMITS = "limits"

CAPACITY_CLIENTS = (16, 32)
FLOOD_TIMES_CAPACITY = 3.0  # the flooding tenant offers this many times the capacity,
FLOOD_TIMES_QUOTA = 4.0  # which is this many times its requests_per_minute
STEADY_TIMES_CAPACITY = 0.15  # the steady tenants (B, interactive): their rate
STEADY_QUOTA_HEADROOM = 2.0  # B's requests_per_minute over its rate: never reached
BATCH_TIMES_CAPACITY = 2.0
LIMITED_REQUESTS_PER_MINUTE = 300
LIMITED_TOKENS_PER_MINUTE = 3000
LIMITED_TIMES = 4.0  # the limited tenants offer this many times their limit
TEXT_WORDS_MEAN = 14.0  # the text embeddings' words (uniform 4-24): a request's tokens
MIXED_RATE = 1.0  # requests/s of the usage tenant's mix
RETRY_SAMPLE_MAX = 20
UNLIMITED_PER_MINUTE = 1_000_000  # a limit never reached, so that every answer tells it

GOALS = {"steady_goodput_vs_alone": 0.95, "steady_p95_vs_alone": 1.3,
         "interactive_p95_vs_unloaded": 1.5, "limit_rate_tolerance": 0.05,
         "usage_tolerance": 0.01}


def run_key(run: str, tenant: str) -> str:
    return f"{run}-{tenant}"


def capacity_label(clients: int) -> str:
    return f"capacity-c{clients}"


@dataclass(frozen=True)
class RoundPlan:
    """A round's offered rates (requests/s) and limits (per minute), from its capacity."""

    capacity: float
    flood_rate: float
    flood_requests_per_minute: int
    steady_rate: float
    steady_requests_per_minute: int
    batch_rate: float
    retry_sample: int
    limited_requests_per_minute: int = LIMITED_REQUESTS_PER_MINUTE
    limited_tokens_per_minute: int = LIMITED_TOKENS_PER_MINUTE
    limited_rate: float = LIMITED_TIMES * LIMITED_REQUESTS_PER_MINUTE / 60
    tokens_rate: float = LIMITED_TIMES * LIMITED_TOKENS_PER_MINUTE / 60 / TEXT_WORDS_MEAN
    mixed_rate: float = MIXED_RATE

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def round_plan(capacity: float) -> RoundPlan:
    """A's quota is a quarter of what it offers (3x the capacity); B asks a steady 0.15x the
    capacity under a quota twice that; A's sampled retries are at most half of what its bucket
    refills in a second, so that they never wait on one another."""
    if capacity <= 0:
        raise ValueError("no capacity measured: the app served nothing")
    flood_rate = FLOOD_TIMES_CAPACITY * capacity
    flood_quota = max(1, round(flood_rate / FLOOD_TIMES_QUOTA * 60))
    steady_rate = STEADY_TIMES_CAPACITY * capacity
    return RoundPlan(
        capacity=capacity, flood_rate=flood_rate, flood_requests_per_minute=flood_quota,
        steady_rate=steady_rate,
        steady_requests_per_minute=math.ceil(STEADY_QUOTA_HEADROOM * steady_rate * 60),
        batch_rate=BATCH_TIMES_CAPACITY * capacity,
        retry_sample=max(1, min(RETRY_SAMPLE_MAX, math.floor(flood_quota / 60 / 2))))


def capacity_of(reports: Iterable[dict[str, Any]]) -> float:
    """The most requests/s any closed-loop level answered (bench/capacity.py)."""
    return measured_capacity({"name": "capacity", "points": [
        {"overall": report["metrics"]["overall"]} for report in reports]})


def steady_figures(report: dict[str, Any]) -> dict[str, Any]:
    """A steady tenant's run: its within-SLO requests/s (its route's objective), e2e p95 of
    the answered, and what its limits and the app turned away."""
    overall, tenant = report["metrics"]["overall"], report["tenant"]
    slo = overall.get("route_slo") or {}
    return {"offered_rate": report["load"].get("rate"),
            "goodput_requests_per_s": slo.get("requests_per_s"),
            "within_slo": slo.get("fraction"),
            "request_throughput": overall["request_throughput"],
            "e2e_p95": (overall.get("e2e") or {}).get("p95"),
            "requests": tenant["measured"], "errors": overall["requests"]["errors"],
            "limits_refusals": tenant["limits_refusals"], "shed": tenant["shed"]}


def flood_figures(report: dict[str, Any], requests_per_minute: int | None) -> dict[str, Any]:
    """A tenant driven past its limit: offered and accepted rates, refusals, retries."""
    tenant = report["tenant"]
    return {"offered_rate": report["load"].get("rate"),
            "quota_per_s": requests_per_minute / 60 if requests_per_minute else None,
            "accepted_requests_per_s": tenant["accepted_requests_per_s"],
            "measured": tenant["measured"], "limits_refusals": tenant["limits_refusals"],
            "refusals_with_retry_after": tenant["refusals_with_retry_after"],
            "shed": tenant["shed"], "ok": tenant["ok"], "retries": tenant["retries"],
            "ingress_replicas": replica_shares(tenant.get("ingress_replicas") or {})}


def replica_shares(by_replica: Mapping[str, float]) -> dict[str, float]:
    """Each ingress replica's share of the requests it counted, in replica order."""
    total = sum(by_replica.values())
    return {f"replica_{i}": value / total if total else 0.0
            for i, value in enumerate(by_replica[name] for name in sorted(by_replica))}


def within_factor(value: float | None, base: float | None, factor: float) -> bool:
    """`value` (a latency) is at most `factor` times `base`; never met without both."""
    return value is not None and base is not None and value <= factor * base


def isolation(runs: Mapping[str, dict[str, Any]], plan: RoundPlan) -> dict[str, Any] | None:
    """B alone against B beside A's flood, and what A's limits did."""
    keys = (run_key(ALONE, STEADY), run_key(FLOOD, STEADY), run_key(FLOOD, FLOODER))
    if not all(key in runs for key in keys):
        return None
    alone, flooded = (steady_figures(runs[key]) for key in keys[:2])
    flooder = flood_figures(runs[keys[2]], plan.flood_requests_per_minute)
    retries = flooder["retries"]
    met = {"steady_goodput_at_least_0_95x_alone": at_least(
               flooded["goodput_requests_per_s"], alone["goodput_requests_per_s"],
               GOALS["steady_goodput_vs_alone"]),
           "steady_p95_at_most_1_3x_alone": within_factor(
               flooded["e2e_p95"], alone["e2e_p95"], GOALS["steady_p95_vs_alone"]),
           "flooder_refused_with_retry_after": 0 < flooder["limits_refusals"]
           == flooder["refusals_with_retry_after"],
           "retried_after_retry_after_admitted": 0 < retries["sent"] == retries["admitted"]}
    return {"steady_alone": alone, "steady_flooded": flooded, "flooder": flooder,
            "flooded_vs_alone": {key: ratio(flooded[key], alone[key])
                                 for key in ("goodput_requests_per_s", "e2e_p95")},
            "retried_admitted_share": ratio(retries["admitted"], retries["sent"]),
            "goals_met": met}


def priorities(runs: Mapping[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The interactive tenant unloaded against beside the batch tenant's overload."""
    keys = (run_key(INTERACTIVE_ALONE, INTERACTIVE), run_key(WITH_BATCH, INTERACTIVE),
            run_key(WITH_BATCH, BATCH))
    if not all(key in runs for key in keys):
        return None
    alone, loaded = (steady_figures(runs[key]) for key in keys[:2])
    batch = {**steady_figures(runs[keys[2]]),
             "shed_by_status": runs[keys[2]]["tenant"]["shed_by_status"]}
    met = {"interactive_p95_at_most_1_5x_unloaded": within_factor(
               loaded["e2e_p95"], alone["e2e_p95"], GOALS["interactive_p95_vs_unloaded"]),
           "interactive_not_shed": loaded["shed"] == 0,
           "batch_absorbs_the_shedding": batch["shed"] > 0}
    return {"interactive_unloaded": alone, "interactive_loaded": loaded, "batch": batch,
            "loaded_vs_unloaded": {key: ratio(loaded[key], alone[key])
                                   for key in ("goodput_requests_per_s", "e2e_p95")},
            "goals_met": met}


def limits(runs: Mapping[str, dict[str, Any]], plan: RoundPlan) -> dict[str, Any] | None:
    """Accepted rates against the configured ones, over the measured window (opened on an
    emptied bucket), and the ingress replicas that counted them."""
    keys = (run_key(LIMITS, LIMITED), run_key(LIMITS, TOKENS))
    if not all(key in runs for key in keys):
        return None
    requests, tokens = (runs[key]["tenant"] for key in keys)
    tolerance = GOALS["limit_rate_tolerance"]
    figures = {
        "requests": _rate(requests["accepted_requests_per_s"],
                          plan.limited_requests_per_minute / 60, requests,
                          runs[keys[0]]["load"].get("rate")),
        "tokens": _rate(tokens["accepted_tokens_per_s"], plan.limited_tokens_per_minute / 60,
                        tokens, runs[keys[1]]["load"].get("rate"))}
    shares = replica_shares(requests.get("ingress_replicas") or {})
    met = {"requests_rate_within_5pct": _within(figures["requests"]["accepted_vs_configured"],
                                                tolerance),
           "tokens_rate_within_5pct": _within(figures["tokens"]["accepted_vs_configured"],
                                              tolerance),
           "both_ingress_replicas_served": sum(share > 0 for share in shares.values()) >= 2}
    return {**figures, "ingress_replicas": shares, "goals_met": met}


def _rate(accepted: float | None, configured: float, tenant: dict[str, Any],
          offered: float | None) -> dict[str, Any]:
    return {"configured_per_s": configured, "accepted_per_s": accepted,
            "accepted_vs_configured": ratio(accepted, configured), "offered_requests_per_s":
            offered, "first_refusal_s": tenant["first_refusal_s"],
            "limits_refusals": tenant["limits_refusals"], "shed": tenant["shed"]}


def _within(value: float | None, tolerance: float) -> bool:
    return value is not None and abs(value - 1.0) <= tolerance + 1e-9


def usage_totals(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each tenant's totals over every day GET /v1/usage reports (serve_app/usage_totals.py)."""
    totals = {}
    for tenant, periods in (report.get("tenants") or {}).items():
        totals[tenant] = {name: float(sum(day.get(name, 0) for day in periods.get("days", ())))
                          for name in USAGE_COUNTS}
    return totals


def usage_delta(before: Mapping[str, Mapping[str, float]],
                after: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    return {tenant: {name: counts.get(name, 0.0) - (before.get(tenant) or {}).get(name, 0.0)
                     for name in USAGE_COUNTS} for tenant, counts in sorted(after.items())}


def told_by_tenant(runs: Mapping[str, dict[str, Any]],
                   out_of_band: Mapping[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """What the clients were told, per tenant, over a round's runs and its own requests."""
    told: dict[str, dict[str, float]] = {name: dict(t) for name, t in out_of_band.items()}
    for report in runs.values():
        tenant = report["tenant"]
        told[tenant["name"]] = add_told(told.get(tenant["name"], {}), tenant["told"])
    return dict(sorted(told.items()))


def usage_check(server: Mapping[str, Mapping[str, float]],
                told: Mapping[str, Mapping[str, float]],
                tolerance: float = GOALS["usage_tolerance"]) -> dict[str, Any]:
    """Each tenant's totals as the app counted them against what its clients were told,
    count by count: within `tolerance` of the clients' (exactly 0 where they were told 0)."""
    tenants = {}
    for tenant in sorted({*server, *told} - {ADMIN}):
        app, clients = server.get(tenant) or {}, told.get(tenant) or {}
        tenants[tenant] = {name: _count_check(app.get(name, 0.0), clients.get(name, 0.0))
                           for name in USAGE_COUNTS}
        tenants[tenant]["no_response"] = clients.get("no_response", 0.0)
    every = [count_within(counts[name], tolerance) for counts in tenants.values()
             for name in USAGE_COUNTS]
    return {"tenants": tenants, "goals_met": {"usage_within_1pct": bool(every) and all(every)}}


def _count_check(app: float, clients: float) -> dict[str, Any]:
    return {"app": app, "clients": clients, "app_vs_clients": ratio(app, clients)}


def count_within(check: Mapping[str, Any], tolerance: float = GOALS["usage_tolerance"]
                 ) -> bool:
    """The app's count within `tolerance` of the clients' (exactly 0 where they were told 0)."""
    return abs(check["app"] - check["clients"]) <= tolerance * abs(check["clients"]) + 1e-6


def summarize(round_: Any) -> tuple[dict[str, Any], str]:
    """One round (its `runs` and `extra`) as results and Markdown."""
    runs, extra = round_.runs, round_.extra
    levels = {clients: runs[key] for clients in CAPACITY_CLIENTS
              if (key := run_key(capacity_label(clients), CAPACITY)) in runs}
    results: dict[str, Any] = {"capacity": {
        "levels": {f"c{c}": r["metrics"]["overall"]["request_throughput"]
                   for c, r in levels.items()},
        "requests_per_s": capacity_of(levels.values()) if levels else None}}
    plan = RoundPlan(**extra["plan"]) if extra.get("plan") else None
    if plan is not None:
        results["plan"] = plan.as_dict()
        for name, part in (("isolation", isolation(runs, plan)),
                           ("priorities", priorities(runs)), ("limits", limits(runs, plan))):
            if part is not None:
                results[name] = part
    usage = extra.get("usage_server")
    if usage:
        server = usage_delta(usage["before"], usage["after"])
        results["usage"] = usage_check(server, told_by_tenant(runs, extra.get("out_of_band",
                                                                               {})))
    results["goals"] = GOALS
    results["goals_met"] = {name: value for part in ("isolation", "priorities", "limits",
                                                     "usage")
                            for name, value in (results.get(part) or {}).pop("goals_met",
                                                                             {}).items()}
    return results, round_markdown(results)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _met(value: bool | None) -> str:
    return "-" if value is None else ("met" if value else "NOT met")


def round_markdown(results: dict[str, Any]) -> str:
    capacity = results["capacity"]
    levels = ", ".join(f"{k} {number(v)}" for k, v in capacity["levels"].items())
    lines = [f"Capacity (closed loop, image embeddings, the tenant `{CAPACITY}`): "
             f"{levels or '-'} req/s; the most, {number(capacity['requests_per_s'])} req/s, "
             "is the capacity.", ""]
    plan = results.get("plan")
    if plan:
        lines += [f"Offered: `{FLOODER}` {number(plan['flood_rate'])} req/s against its "
                  f"{plan['flood_requests_per_minute']} requests/min; `{STEADY}` and "
                  f"`{INTERACTIVE}` {number(plan['steady_rate'])} req/s (`{STEADY}`'s "
                  f"quota {plan['steady_requests_per_minute']}/min); `{BATCH}` "
                  f"{number(plan['batch_rate'])} req/s; `{LIMITED}` "
                  f"{number(plan['limited_rate'])} req/s against "
                  f"{plan['limited_requests_per_minute']}/min; `{TOKENS}` "
                  f"{number(plan['tokens_rate'])} req/s against "
                  f"{plan['limited_tokens_per_minute']} tokens/min.", ""]
    lines += _isolation_lines(results.get("isolation"))
    lines += _priority_lines(results.get("priorities"))
    lines += _limit_lines(results.get("limits"))
    lines += _usage_lines(results.get("usage"))
    lines += ["| goal | this round |", "|---|---|"]
    lines += [f"| {name} | {_met(value)} |" for name, value in results["goals_met"].items()]
    return "\n".join(lines) + "\n"


STEADY_ROWS = (("offered_rate", "offered req/s", number),
               ("goodput_requests_per_s", "within-SLO req/s", number),
               ("within_slo", "share within SLO", _share),
               ("e2e_p95", "e2e p95 s", number), ("requests", "requests measured", number),
               ("limits_refusals", "refused by its limits", number),
               ("shed", "shed by the app (429/503)", number), ("errors", "failed", number))


def _steady_table(title: str, columns: list[tuple[str, dict[str, Any]]],
                  ratios: dict[str, float | None]) -> list[str]:
    lines = [f"| {title} | " + " | ".join(name for name, _ in columns) + " | ratio |",
             "|---|" + "---:|" * (len(columns) + 1)]
    for key, name, show in STEADY_ROWS:
        lines.append(f"| {name} | " + " | ".join(show(c.get(key)) for _, c in columns)
                     + f" | {number(ratios.get(key))} |")
    return lines


def _isolation_lines(part: dict[str, Any] | None) -> list[str]:
    if part is None:
        return []
    flooder, retries = part["flooder"], part["flooder"]["retries"]
    lines = ["Isolation: `team-b` alone, then beside `team-a`'s flood.", "",
             *_steady_table("team-b", [("alone", part["steady_alone"]),
                                       ("beside the flood", part["steady_flooded"])],
                            part["flooded_vs_alone"]), "",
             f"`{FLOODER}`: offered {number(flooder['offered_rate'])} req/s, quota "
             f"{number(flooder['quota_per_s'])} req/s, accepted "
             f"{number(flooder['accepted_requests_per_s'])} req/s; "
             f"{flooder['limits_refusals']} refused by its limits "
             f"({flooder['refusals_with_retry_after']} with a Retry-After), {flooder['shed']} "
             f"shed; retried once after their Retry-After, once the flood had stopped: "
             f"{retries['sent']}, admitted {retries['admitted']}, answered "
             f"{retries['ok']}; by ingress replica: "
             + ", ".join(f"{_share(v)}" for v in flooder["ingress_replicas"].values()) + ".",
             ""]
    return lines


def _priority_lines(part: dict[str, Any] | None) -> list[str]:
    if part is None:
        return []
    batch = part["batch"]
    shed = ", ".join(f"{status}: {n}" for status, n in batch["shed_by_status"].items()) or "none"
    return ["Priorities: `interactive` unloaded, then beside `batch` at 2x the capacity.", "",
            *_steady_table("interactive", [("unloaded", part["interactive_unloaded"]),
                                           ("beside batch", part["interactive_loaded"])],
                           part["loaded_vs_unloaded"]), "",
            f"`{BATCH}`: offered {number(batch['offered_rate'])} req/s, answered "
            f"{number(batch['request_throughput'])} req/s, shed {batch['shed']} ({shed}), "
            f"e2e p95 {number(batch['e2e_p95'])} s.", ""]


def _limit_lines(part: dict[str, Any] | None) -> list[str]:
    if part is None:
        return []
    lines = ["Limits across the two ingress replicas (the measured window only, opened on "
             "buckets emptied first).", "",
             "| limit | configured /s | accepted /s | accepted / configured | first refusal "
             "in the window, s | refused |", "|---|---:|---:|---:|---:|---:|"]
    for name in ("requests", "tokens"):
        f = part[name]
        lines.append(f"| {name} per minute | {number(f['configured_per_s'])} | "
                     f"{number(f['accepted_per_s'])} | {number(f['accepted_vs_configured'])} | "
                     f"{number(f['first_refusal_s'])} | {f['limits_refusals']} |")
    lines += ["", f"`{LIMITED}`'s admitted requests by ingress replica: "
              + (", ".join(f"{k} {_share(v)}" for k, v in part["ingress_replicas"].items())
                 or "none counted") + ".", ""]
    return lines


def _usage_lines(part: dict[str, Any] | None) -> list[str]:
    if part is None:
        return []
    lines = ["Usage (GET /v1/usage, the round's change) against what the clients were told.",
             "", "| tenant | count | app | clients | app / clients | within 1% |",
             "|---|---|---:|---:|---:|---|"]
    for tenant, counts in part["tenants"].items():
        for name in USAGE_COUNTS:
            check = counts[name]
            if check["app"] or check["clients"]:
                lines.append(f"| {tenant} | {name} | {number(check['app'], 6)} | "
                             f"{number(check['clients'], 6)} | "
                             f"{number(check['app_vs_clients'], 4)} | "
                             f"{_met(count_within(check))} |")
    return lines + [""]


HEADLINE = (
    (("isolation", "steady_alone", "goodput_requests_per_s"), "team-b within-SLO req/s, alone"),
    (("isolation", "steady_flooded", "goodput_requests_per_s"),
     "team-b within-SLO req/s, beside the flood"),
    (("isolation", "steady_alone", "e2e_p95"), "team-b e2e p95 s, alone"),
    (("isolation", "steady_flooded", "e2e_p95"), "team-b e2e p95 s, beside the flood"),
    (("isolation", "retried_admitted_share"), "team-a retries admitted"),
    (("priorities", "interactive_unloaded", "e2e_p95"), "interactive e2e p95 s, unloaded"),
    (("priorities", "interactive_loaded", "e2e_p95"), "interactive e2e p95 s, beside batch"),
    (("priorities", "interactive_loaded", "shed"), "interactive shed"),
    (("priorities", "batch", "shed"), "batch shed"),
    (("limits", "requests", "accepted_vs_configured"), "requests/min accepted / configured"),
    (("limits", "tokens", "accepted_vs_configured"), "tokens/min accepted / configured"))


def across_rounds(merged: dict[str, Any], rounds: list[Any]) -> str:
    """The headline figures, median (min-max) across rounds."""
    rows = []
    for path, name in HEADLINE:
        node: Any = merged
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and "median" in node:
            rows.append(f"| {name} | {median_range(node)} |")
    if not rows:
        return ""
    return "\n".join([f"## Headline, across {len(rounds)} rounds", "",
                      "Median of the rounds (min-max).", "", "| figure | value |",
                      "|---|---:|", *rows]) + "\n"
