"""`python -m bench soak`: the mixed workload, open loop, for a long time, with a replica killed
every few minutes (text, vision, audio in turn), while each replica's memory is sampled.

    python -m bench soak --profile cpu                       # sweep first, then 10 min at 80%
    python -m bench soak --profile cpu --sweep-result S.json # 80% of that sweep's best rate
    python -m bench soak --profile cpu --rate 1.5 --duration 90s --kill-every 30s   (a smoke run)

The rate is `load_fraction` of the highest rate that met the SLO in a sweep: one run here
(`--sweep-rates`), or a sweep report given with `--sweep-result`; `--rate` uses a rate as given.
The checks are bench/soak_checks.py's; the summary (JSON and Markdown, with the command line)
goes to bench/results/soak/. Exits 1 when a check fails.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.app_launcher import Target
from bench.environment import machine, now_iso, uptime
from bench.load import LoadSpec, generate_load
from bench.metrics import run_metrics
from bench.records import RequestRecord
from bench.replica_kill import MODALITY_DEPLOYMENTS, Kill, ReplicaView, rss_bytes
from bench.report import write_json, write_text
from bench.soak_checks import RssSample, SoakRules, request_checks, rss_check, rss_growth
from bench.workloads import Workload

SCHEMA = "mmserve-bench/soak/1"
RESULTS = Path(__file__).resolve().parent / "results" / "soak"
# Which replica groups a request of each workload route needs.
ROUTE_MODALITIES = {"chat": ("text",), "image-embedding": ("vision",),
                    "text-embedding": ("vision",), "transcription": ("audio",),
                    "pipeline": ("text", "vision", "audio")}
STOP_KILLING_BEFORE_END_S = 10.0  # a kill in the last seconds would leave no time to see it heal


@dataclass(frozen=True)
class SoakPlan:
    rate: float
    duration_s: float = 600.0
    kill_every_s: float = 120.0
    rss_interval_s: float = 5.0
    modalities: tuple[str, ...] = ("text", "vision", "audio")
    seed: int = 0
    timeout_s: float = 300.0


def best_rate(sweep: dict[str, Any]) -> float:
    """The offered rate of the sweep's best level under its SLO (an open-loop sweep)."""
    best = sweep.get("best_under_slo")
    if not best or best.get("rate") is None:
        raise SystemExit(f"the sweep {sweep.get('name')!r} has no rate level that met its SLO: "
                         "nothing to take 80% of")
    return float(best["rate"])


def kill_times(plan: SoakPlan) -> list[float]:
    """Seconds after the start of the load at which a replica is killed."""
    times, at = [], plan.kill_every_s
    while at <= plan.duration_s - STOP_KILLING_BEFORE_END_S:
        times.append(at)
        at += plan.kill_every_s
    return times


class Watcher:
    """Samples every replica's RSS, kills replicas on schedule, notes when each is replaced."""

    def __init__(self, view: ReplicaView, plan: SoakPlan) -> None:
        self.view, self.plan = view, plan
        self.samples: list[RssSample] = []
        self.kills: list[dict[str, Any]] = []
        self._pending: list[Kill] = []

    def sample(self) -> None:
        now = time.time()
        for replica in self.view.running():
            if self.view.is_local(replica) and (rss := rss_bytes(replica.pid)) is not None:
                self.samples.append(RssSample(now, replica.deployment, replica.pid, rss,
                                              replica.start_time_s))

    def kill(self, index: int) -> None:
        modality = self.plan.modalities[index % len(self.plan.modalities)]
        kill = self.view.kill_one(MODALITY_DEPLOYMENTS[modality])
        self._pending.append(kill)
        self.kills.append({"modality": modality, **asdict(kill), "replaced_at": None,
                           "new_pid": None})
        print(f"soak: killed {kill.deployment} pid {kill.pid}", file=sys.stderr, flush=True)

    def note_replacements(self) -> None:
        for kill in list(self._pending):
            fresh = [r for r in self.view.running(kill.deployment)
                     if r.pid != kill.pid and r.start_time_s >= kill.at - 1]
            if fresh:
                entry = next(k for k in self.kills if k["pid"] == kill.pid)
                entry.update(replaced_at=time.time(), new_pid=fresh[0].pid)
                self._pending.remove(kill)

    def watch(self, load: threading.Thread, load_start: float) -> None:
        schedule = [load_start + t for t in kill_times(self.plan)]
        while load.is_alive():
            if schedule and time.time() >= schedule[0]:
                schedule.pop(0)
                self.kill(len(self.kills))
            self.note_replacements()
            self.sample()
            load.join(timeout=self.plan.rss_interval_s)
        self.note_replacements()
        self.sample()


def run_soak(target: Target, view: ReplicaView, workload: Workload, plan: SoakPlan,
             rules: SoakRules, bounds: dict[str, float], *, name: str, command: str, out: Path,
             rate_source: dict[str, Any], quiet: bool = False) -> dict[str, Any]:
    view.wait_healthy()
    environment = {**machine(), "started_at": now_iso(), "uptime_before": uptime()}
    spec = LoadSpec(concurrency=0, rate=plan.rate, duration_s=plan.duration_s, warmup_s=0.0,
                    seed=plan.seed, timeout_s=plan.timeout_s)
    result: dict[str, Any] = {}
    load = threading.Thread(target=lambda: result.update(
        zip(("records", "clients"), generate_load(target.url, workload, spec, quiet))),
        name="soak-load")
    watcher = Watcher(view, plan)
    load_start = time.time() + 3.0  # the client actors start, then wait START_DELAY_S
    load.start()
    watcher.watch(load, load_start)
    if "records" not in result:
        raise RuntimeError("the load generator failed; see its error above")
    environment.update(finished_at=now_iso(), uptime_after=uptime())
    records: list[RequestRecord] = result["records"]
    summary = summarize(records, watcher, plan, rules, bounds,
                        soak_start=result["clients"]["start_at"])
    summary.update(schema=SCHEMA, name=name, command=command, environment=environment,
                   target={"url": target.url, "kind": target.kind, "profile": target.profile},
                   workload=workload.describe(), rate_source=rate_source)
    write_json(summary, out / f"{name}.json")
    write_text(render(summary), out / f"{name}.md")
    return summary


def summarize(records: list[RequestRecord], watcher: Watcher, plan: SoakPlan, rules: SoakRules,
              bounds: dict[str, float], soak_start: float) -> dict[str, Any]:
    checks = request_checks(records, watcher.kills, rules)
    rows = rss_growth(watcher.samples, soak_start, rules)
    checks["rss_growth"] = rss_check(rows)
    kills = [{**k, "at_s": round(k["at"] - soak_start, 1),
              "replaced_after_s": (round(k["replaced_at"] - k["at"], 1)
                                   if k["replaced_at"] else None),
              "served_again_after_s": served_again_after(records, k)} for k in watcher.kills]
    statuses: dict[str, int] = {}
    for record in records:
        key = str(record.status) if record.ok or record.status != 200 else "200-stream-error"
        statuses[key] = statuses.get(key, 0) + 1
    return {"passed": all(c["passed"] for c in checks.values()), "checks": checks,
            "plan": asdict(plan), "rules": asdict(rules), "soak_start": soak_start,
            "kills": kills, "statuses": dict(sorted(statuses.items())), "rss": rows,
            "metrics": run_metrics(records, bounds)}


def served_again_after(records: list[RequestRecord], kill: dict[str, Any]) -> float | None:
    """Seconds from the kill until a request sent after it, to a route that needs the killed
    modality, came back good."""
    ends = [r.finished_at() for r in records if r.ok and r.start >= kill["at"]
            and kill["modality"] in ROUTE_MODALITIES.get(r.route, ())]
    return round(min(ends) - kill["at"], 1) if ends else None


def render(summary: dict[str, Any]) -> str:
    plan, env = summary["plan"], summary["environment"]
    overall = summary["metrics"]["overall"]
    lines = [f"# Soak: {summary['name']}", "", f"- command: `{summary['command']}`",
             f"- git commit: `{env.get('git_commit')}` (a `-dirty` suffix would mean "
             "uncommitted changes)",
             f"- {plan['duration_s']:g} s of the {summary['workload']['name']} workload at "
             f"{plan['rate']:.2f} req/s ({_rate_text(summary['rate_source'])}); a replica "
             f"killed every {plan['kill_every_s']:g} s ({', '.join(plan['modalities'])} in turn)",
             f"- `uptime` before: `{env['uptime_before']}`; after: `{env['uptime_after']}`",
             f"- requests: {overall['requests']['total']} ({overall['requests']['ok']} ok); "
             f"statuses: {json.dumps(summary['statuses'])}",
             f"- result: **{'PASS' if summary['passed'] else 'FAIL'}**", "",
             "| check | passed | count |", "|---|---|---:|"]
    lines += [f"| {name} | {'yes' if c['passed'] else 'NO'} | {c['count']} |"
              for name, c in summary["checks"].items()]
    lines += ["", "| kill at (s) | deployment | pid | replaced after (s) | new pid | "
              "served again after (s) |", "|---:|---|---:|---:|---:|---:|"]
    lines += [f"| {k['at_s']} | {k['deployment']} | {k['pid']} | "
              f"{_or_dash(k['replaced_after_s'])} | {k['new_pid'] or '-'} | "
              f"{_or_dash(k['served_again_after_s'])} |" for k in summary["kills"]]
    lines += ["", "Resident memory per replica process, from its measuring point "
              f"({summary['rules']['rss_from_s']:g} s into the soak, or for a replacement its "
              f"own start + {summary['rules']['rss_warmup_s']:g} s) to its last sample:", "",
              "| deployment | pid | replacement | from (s) | to (s) | MiB then | MiB last | "
              "growth | passed |", "|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for row in summary["rss"]:
        if row["compared"]:
            lines.append(f"| {row['deployment']} | {row['pid']} | "
                         f"{'yes' if row['started_during_soak'] else 'no'} | {row['from_s']} | "
                         f"{row['to_s']} | {row['rss_from_mib']} | {row['rss_to_mib']} | "
                         f"{100 * row['growth']:.1f}% | {'yes' if row['passed'] else 'NO'} |")
        else:
            lines.append(f"| {row['deployment']} | {row['pid']} | "
                         f"{'yes' if row['started_during_soak'] else 'no'} | - | - | - | - | - "
                         f"| not compared: {row['reason']} |")
    return "\n".join(lines) + "\n"


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _rate_text(source: dict[str, Any]) -> str:
    if source.get("kind") == "given":
        return "rate given on the command line"
    return (f"{source['fraction']:.0%} of {source['best_rate']:g} req/s, the highest rate that "
            f"met the SLO in sweep `{source['sweep']}`")


def soak_main(args: Any, command: str) -> int:
    """The `soak` subcommand (bench/cli.py): 0 when every check passed, else 1."""
    import datetime as dt

    from bench.app_under_test import app_under_test
    from bench.cli import workload_of
    from bench.run import ray_for_clients

    name = args.name or dt.datetime.now().strftime("%Y%m%d-%H%M%S") + "-soak"
    out = args.out or RESULTS
    workload = workload_of(args)
    plan_options = {"duration_s": args.duration, "kill_every_s": args.kill_every,
                    "rss_interval_s": args.rss_interval, "seed": args.seed,
                    "timeout_s": args.timeout, "modalities": args.kill_modalities}
    rules = SoakRules(kill_window_after_s=args.kill_window, rss_from_s=args.rss_from,
                      rss_warmup_s=args.rss_warmup, min_rss_span_s=args.min_rss_span,
                      max_rss_growth=args.max_rss_growth)
    with app_under_test(args) as (target, view), ray_for_clients(target, args.address):
        rate, source = _choose_rate(args, target, workload, name, command, out)
        print(f"soak: {rate:.2f} req/s for {args.duration:g} s", file=sys.stderr, flush=True)
        summary = run_soak(target, view, workload, SoakPlan(rate=rate, **plan_options), rules,
                           args.slo, name=name, command=command, out=out, rate_source=source,
                           quiet=args.quiet)
    print(render(summary))
    print(f"summary: {out / (name + '.json')}", file=sys.stderr)
    return 0 if summary["passed"] else 1


def _choose_rate(args: Any, target: Target, workload: Workload, name: str, command: str,
                 out: Path) -> tuple[float, dict[str, Any]]:
    if args.rate is not None:
        return args.rate, {"kind": "given", "rate": args.rate}
    if args.sweep_result is not None:
        sweep, where = json.loads(args.sweep_result.read_text()), str(args.sweep_result)
    else:
        from bench.sweep import run_sweep

        spec = LoadSpec(concurrency=0, rate=None, duration_s=args.sweep_duration,
                        warmup_s=args.sweep_warmup, seed=args.seed, timeout_s=args.timeout)
        sweep = run_sweep(target, workload, spec, args.slo, None, args.sweep_rates,
                          name=f"{name}-sweep", command=command, out=out,
                          attainment=args.attainment, quiet=args.quiet, include_records=False,
                          make_plots=False)
        where = str(out / f"{name}-sweep.json")
    best = best_rate(sweep)
    return args.load_fraction * best, {"kind": "sweep", "sweep": where, "best_rate": best,
                                       "fraction": args.load_fraction, "slo": sweep.get("slo")}
