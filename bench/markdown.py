"""The Markdown summary of a run report: what ran, then the numbers a reader looks for first."""

from __future__ import annotations

from typing import Any

from bench.environment import cpu_line, dirty_line

LATENCIES = (("ttft", "TTFT"), ("itl", "ITL (after 1st token)"), ("tpot", "TPOT"),
             ("e2e", "E2E latency"))
COLUMNS = ("mean", "std", "p50", "p90", "p95", "p99")


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def latency_table(metrics: dict[str, Any]) -> list[str]:
    lines = ["| metric (ms) | " + " | ".join(COLUMNS) + " | n |",
             "|---|" + "---:|" * (len(COLUMNS) + 1)]
    for key, label in LATENCIES:
        dist = metrics.get(key)
        if dist:
            cells = " | ".join(ms(dist[c]) for c in COLUMNS)
            lines.append(f"| {label} | {cells} | {dist['count']} |")
    return lines


def throughput_lines(m: dict[str, Any]) -> list[str]:
    req = m["requests"]
    lines = [f"- requests: {req['ok']} ok, {req['errors']} failed"
             + (f" ({', '.join(f'{k}: {v}' for k, v in m['errors_by_status'].items())})"
                if m["errors_by_status"] else ""),
             f"- request throughput: **{num(m['request_throughput'])} req/s**, "
             f"items {num(m['item_throughput'])}/s",
             ]
    if m["output_tokens"]:
        lines.append(f"- output tokens: {num(m['output_token_throughput'], 1)} tok/s "
                     f"(total with prompts {num(m['total_token_throughput'], 1)} tok/s)")
    if m.get("goodput"):
        g = m["goodput"]
        lines.append(f"- goodput: **{num(g['requests_per_s'])} req/s** meet the SLO "
                     f"({num(100 * (g['fraction'] or 0), 1)}% of requests)")
    if m.get("rtf"):
        lines.append(f"- audio: real-time factor p50 {num(m['rtf']['p50'], 3)}, "
                     f"p95 {num(m['rtf']['p95'], 3)}; {num(m['audio_seconds_per_s'])} s of "
                     f"audio per second (aggregate RTF {num(m['aggregate_rtf'], 3)})"
                     + (f"; WER {num(m['wer_mean'], 3)}" if m.get("wer_mean") is not None
                        else ""))
    return lines


def routes_table(routes: dict[str, Any]) -> list[str]:
    lines = ["| route | ok | errors | req/s | items/s | out tok/s | e2e p50 ms | e2e p95 ms "
             "| e2e p99 ms | ttft p50 ms |", "|---|" + "---:|" * 9]
    for route, m in routes.items():
        e2e, ttft = m.get("e2e") or {}, m.get("ttft") or {}
        lines.append(f"| {route} | {m['requests']['ok']} | {m['requests']['errors']} | "
                     f"{num(m['request_throughput'])} | {num(m['item_throughput'])} | "
                     f"{num(m['output_token_throughput'], 1)} | {ms(e2e.get('p50'))} | "
                     f"{ms(e2e.get('p95'))} | {ms(e2e.get('p99'))} | {ms(ttft.get('p50'))} |")
    return lines


def objective_text(objective: dict[str, float] | None) -> str:
    if not objective:
        return "-"
    return ", ".join(f"{name} <= {bound:g} s" for name, bound in objective.items())


def route_slo_table(m: dict[str, Any]) -> list[str]:
    """Each route against its own objective, beside its throughput and p95s; the whole run
    last."""
    lines = ["| route | objective | within | missed | within % | goodput req/s | req/s "
             "| e2e p95 ms | ttft p95 ms |", "|---|---|" + "---:|" * 7]
    rows = [*m["routes"].items(), ("all routes", m["overall"])]
    for route, metrics in rows:
        slo = metrics["route_slo"]
        e2e, ttft = metrics.get("e2e") or {}, metrics.get("ttft") or {}
        within = "-" if slo["fraction"] is None else num(100 * slo["fraction"], 1)
        lines.append(f"| {route} | {objective_text(slo['objective'])} | {slo['good']} | "
                     f"{slo['missed']} | {within} | {num(slo['requests_per_s'])} | "
                     f"{num(metrics['request_throughput'])} | {ms(e2e.get('p95'))} | "
                     f"{ms(ttft.get('p95'))} |")
    return lines


def misses_table(routes: dict[str, Any]) -> list[str]:
    """Each route's missed requests by the stage blamed (bench/miss_attribution.py)."""
    lines = ["| route | stage blamed | misses | share of the route's misses |",
             "|---|---|---:|---:|"]
    for route, metrics in routes.items():
        slo = metrics["route_slo"]
        for stage, count in slo["misses_by_stage"].items():
            lines.append(f"| {route} | {stage} | {count} | "
                         f"{num(100 * count / slo['missed'], 1)}% |")
    return lines


def route_slo_lines(m: dict[str, Any]) -> list[str]:
    if not m["overall"].get("route_slo"):  # a report from before route objectives
        return []
    lines = ["", "## Route SLOs", "",
             "Each route against its own objective (`--route-slo`; the app's by default): a "
             "stream's TTFT and e2e, a whole answer's e2e; a failed request misses.", "",
             *route_slo_table(m)]
    if m["overall"]["route_slo"]["missed"]:
        lines += ["", "Misses by the stage blamed: the stage furthest past its median among "
                  "the route's requests that met the objective (TTFT misses: up to the first "
                  "token); `outside-server` is the client's time beyond the server's total, "
                  "`unknown` an answer without Server-Timing, `error` a failed request.", "",
                  *misses_table(m["routes"])]
    return lines


def stages_table(stages: dict[str, Any]) -> list[str]:
    lines = ["| pipeline stage (server timings, ms) | mean | p50 | p95 | p99 |",
             "|---|---:|---:|---:|---:|"]
    for stage, dist in stages.items():
        if dist:
            lines.append(f"| {stage} | {ms(dist['mean'])} | {ms(dist['p50'])} | "
                         f"{ms(dist['p95'])} | {ms(dist['p99'])} |")
    return lines


def server_lines(server: dict[str, Any]) -> list[str]:
    if not server.get("available"):
        if server.get("targets"):
            return [f"Scraped {', '.join(server['targets'])}, but found no Ray Serve or mmserve "
                    "metrics there" + (f" ({server['errors'][0]})" if server.get("errors")
                                       else ".")]
        return ["No server-side metrics (no Prometheus endpoint scraped)."]
    s = server["summary"]

    def pairs(values: dict[str, float], digits: int = 1) -> str:
        return ", ".join(f"{k} {v:.{digits}f}" for k, v in sorted(values.items())) or "-"

    return [f"- mean batch size (requests per model call): {pairs(s.get('batch_size', {}), 2)}",
            f"- model calls: {pairs(s.get('model_calls', {}), 0)}; model busy seconds: "
            f"{pairs(s.get('model_seconds', {}), 1)}",
            f"- most replicas: {pairs(s.get('replicas_max', {}), 0)}",
            f"- longest router queue: {pairs(s.get('queued_max', {}), 0)}; most requests in "
            f"replicas: {pairs(s.get('ongoing_max', {}), 0)}",
            f"- {len(server['series'])} scrapes every {server.get('interval_s')} s of "
            f"{', '.join(server['targets'])}"]


def offered_load(load: dict[str, Any]) -> str:
    if load["mode"] == "closed":
        return f"{load['concurrency']} concurrent clients (closed loop)"
    bursts = ""
    if load.get("arrivals") == "bursty":
        bursts = (f", bursts of {load['burst_s']:g} s at {load['burst_factor']:g}x every "
                  f"{load['burst_period_s']:g} s, {num(load['burst_base_rate'])} req/s between")
    return (f"{load['rate']} req/s open loop (burstiness {load['burstiness']}{bursts}"
            + (f", at most {load['concurrency']} in flight)" if load["concurrency"] else ")"))


def render(report: dict[str, Any]) -> str:
    m, env, load = report["metrics"], report["environment"], report["load"]
    offered = offered_load(load)
    bound = (f"{load['duration_s']:g} s" if load["duration_s"] is not None
             else f"{load['requests']} requests")
    lines = [f"# Benchmark: {report['name']}", "",
             f"- target: {report['target']['kind']} `{report['target']['url']}`"
             + (f" (profile {report['target']['profile']})" if report["target"]["profile"]
                else "")
             + "".join(f"; `{path}` to `{url}`"
                       for path, url in (report["target"].get("route_urls") or {}).items()),
             f"- workload: {report['workload'].get('name')}; {offered}; {bound} after "
             f"{load['warmup_s']:g} s warm-up; {report['clients']['actors']} client actor(s) on "
             f"{', '.join(report['clients']['nodes'])}",
             f"- measured window {m['duration_s']:.1f} s; {m['warmup_excluded']} warm-up "
             "requests left out",
             f"- machine: {env['host']}, {env['cpu_count']} CPUs; before: `{env['uptime_before']}`;"
             f" after: `{env['uptime_after']}`",
             f"- CPU: {cpu_line(env)}; commit `{env.get('git_commit')}`",
             f"- command: `{report['command']}`", ""]
    dirty = dirty_line(env)
    if dirty:
        lines[2:2] = [f"> {dirty}", ""]
    if m["slo"]:
        lines.append(f"- SLO: {', '.join(f'{k} <= {v:g}' for k, v in m['slo'].items())}"
                     + (f" (never applicable: {', '.join(m['slo_unchecked'])})"
                        if m["slo_unchecked"] else ""))
    lines += ["## Overall", ""] + throughput_lines(m["overall"]) + [""]
    lines += latency_table(m["overall"]) + ["", "## Per route", ""] + routes_table(m["routes"])
    lines += route_slo_lines(m)
    stages = m["overall"].get("stages") or {}
    if stages:
        lines += ["", "## Pipeline stages", ""] + stages_table(stages)
    lines += ["", "## Server side", ""] + server_lines(report["server"])
    return "\n".join(lines) + "\n"
