"""`python -m bench fuzz`: thousands of generated requests against a running app, each judged by
bench/fuzz_checks.py, then every replica checked to be the same process as before and a good
request of each modality sent.

    python -m bench fuzz --profile cpu --requests 10000      # starts the app on its own Ray head
    python -m bench fuzz --url http://127.0.0.1:8000 --dashboard http://127.0.0.1:8265

Requests come from bench/fuzz_strategies.any_request, drawn by Hypothesis from a seed (the same
seed draws the same requests) and sent by `concurrency` threads while more are drawn. The
summary (JSON and Markdown: counts by route and status, every contract violation up to a limit,
the replicas before and after, the command, the git commit and whether the tree was dirty) goes
to bench/results/fuzz/. Exits 1 on any violation, transport error, replaced replica, failed good
request, or when fewer requests were sent than asked.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.environment import machine, now_iso, uptime
from bench.fuzz_checks import FuzzResponse, problems, send
from bench.fuzz_media import audio, b64, images
from bench.fuzz_strategies import TEXT_MODEL, FuzzRequest, Limits, any_request
from bench.replica_kill import ReplicaView
from bench.report import write_json, write_text

SCHEMA = "mmserve-bench/fuzz/1"
RESULTS = Path(__file__).resolve().parent / "results" / "fuzz"
KEPT_VIOLATIONS = 50
PROGRESS_EVERY = 500
MAX_ROUNDS = 5  # of drawing more when some drawn requests could not be sent
SEED_STRIDE = 1000  # between rounds: draw_and_send may use seed .. seed + 99 itself


class Tally:
    """What the sender threads saw, counted under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_route: dict[str, Counter[str]] = defaultdict(Counter)
        self.sent = self.unsendable = self.transport_errors = self.server_errors = 0
        self.violations: list[dict[str, Any]] = []
        self.violation_count = 0
        self.slowest_s = 0.0

    def add(self, request: FuzzRequest, response: FuzzResponse, found: list[str]) -> None:
        with self.lock:
            if response.unsendable:
                self.unsendable += 1
                return
            self.sent += 1
            status = str(response.status) if response.status else "no_response"
            self.by_route[request.route][status] += 1
            self.transport_errors += response.transport_error is not None
            self.server_errors += response.status >= 500
            self.slowest_s = max(self.slowest_s, response.seconds)
            if found:
                self.violation_count += 1
                if len(self.violations) < KEPT_VIOLATIONS:
                    self.violations.append({"problems": found, "request": request.describe(),
                                            "status": response.status,
                                            "body": response.body[:300].decode(errors="replace")})
                    print(f"fuzz: violation {self.violations[-1]}"[:2000], file=sys.stderr,
                          flush=True)  # as it happens: a long run's summary comes at its end

    def by_status(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for counts in self.by_route.values():
            total.update(counts)
        return dict(sorted(total.items()))


def draw_and_send(strategy: Any, count: int, seed: int, submit: Any) -> int:
    """Draws `count` requests from `strategy` (Hypothesis, seeded) and hands each to `submit`.
    Hypothesis may stop a run early when it thinks it has seen enough: draw again, seed + 1."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fixed_seed

    drawn = 0
    for attempt in range(100):
        wanted = count - drawn
        if wanted <= 0:
            break

        @fixed_seed(seed + attempt)
        @settings(max_examples=wanted, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def one(request: FuzzRequest) -> None:
            nonlocal drawn
            if drawn < count:
                drawn += 1
                submit(request)

        one()
    return drawn


def good_requests() -> dict[str, tuple[str, dict[str, Any]]]:
    """One request per modality that must succeed after the fuzz."""
    chat = {"model": TEXT_MODEL, "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "user", "content": "Hi"}]}
    return {"text": ("/v1/chat/completions", {"json": chat}),
            "vision": ("/v1/embeddings", {"json": {"model": "clip-vit-b-32-image",
                                                   "input": b64(images()["png"])}}),
            "audio": ("/v1/audio/transcriptions", {
                "data": {"model": "whisper-base"},
                "files": {"file": ("speech.wav", audio()["wav"], "audio/wav")}})}


def run_fuzz(url: str, view: ReplicaView | None, limits: Limits, *, requests: int,
             concurrency: int, seed: int, timeout_s: float, headers: dict[str, str],
             name: str, command: str, out: Path, quiet: bool = False) -> dict[str, Any]:
    environment = {**machine(), "started_at": now_iso(), "uptime_before": uptime()}
    pids_before = view.pids() if view else None
    tally = Tally()
    local = threading.local()
    slots = threading.BoundedSemaphore(concurrency * 2)

    def work(request: FuzzRequest) -> None:
        try:
            if not hasattr(local, "http"):
                local.http = httpx.Client(base_url=url, headers=headers, timeout=timeout_s)
            response = send(local.http, request)
            tally.add(request, response, problems(request, response))
            if not quiet and tally.sent % PROGRESS_EVERY == 0:
                print(f"fuzz: {tally.sent} sent, {tally.violation_count} violations",
                      file=sys.stderr, flush=True)
        finally:
            slots.release()

    def submit(request: FuzzRequest) -> None:
        slots.acquire()
        pool.submit(work, request)

    started = time.monotonic()
    drawn = 0
    for round_ in range(MAX_ROUNDS):  # until `requests` reached the server: some drawn ones
        if tally.sent >= requests:    # (an invalid URL or header) cannot even be sent
            break
        with ThreadPoolExecutor(concurrency) as pool:
            drawn += draw_and_send(any_request(limits), requests - tally.sent,
                                   seed + SEED_STRIDE * round_, submit)
    elapsed = time.monotonic() - started
    good = _send_good_requests(url, headers, timeout_s)
    pids_after = view.pids() if view else None
    environment.update(finished_at=now_iso(), uptime_after=uptime())
    criteria = {
        "requests_sent": tally.sent >= requests,
        "no_contract_violation": tally.violation_count == 0,
        "no_server_error": tally.server_errors == 0,
        "no_transport_error": tally.transport_errors == 0,
        "replicas_unchanged": view is None or pids_after == pids_before,
        "good_requests_succeed": all(status == 200 for status in good.values()),
    }
    summary = {
        "schema": SCHEMA, "name": name, "command": command, "environment": environment,
        "git_commit": environment["git_commit"],
        "tree_dirty": str(environment["git_commit"]).endswith("-dirty"),
        "target": url, "seed": seed, "concurrency": concurrency, "limits": _plain(limits),
        "requested": requests, "drawn": drawn, "sent": tally.sent,
        "unsendable": tally.unsendable, "seconds": round(elapsed, 1),
        "slowest_request_s": round(tally.slowest_s, 2),
        "by_status": tally.by_status(),
        "by_route": {route: dict(sorted(c.items())) for route, c in sorted(tally.by_route.items())},
        "server_errors": tally.server_errors, "transport_errors": tally.transport_errors,
        "violations": tally.violation_count, "violation_examples": tally.violations,
        "replicas_before": pids_before, "replicas_after": pids_after,
        "replicas_checked": view is not None, "good_requests": good,
        "criteria": criteria, "passed": all(criteria.values()),
    }
    write_json(summary, out / f"{name}.json")
    write_text(render(summary), out / f"{name}.md")
    return summary


def _send_good_requests(url: str, headers: dict[str, str], timeout_s: float) -> dict[str, int]:
    statuses = {}
    with httpx.Client(base_url=url, headers=headers, timeout=timeout_s) as http:
        for modality, (path, kwargs) in good_requests().items():
            try:
                statuses[modality] = http.post(path, **kwargs).status_code
            except httpx.TransportError:
                statuses[modality] = 0
    return statuses


def _plain(limits: Limits) -> dict[str, Any]:
    return {**{k: v for k, v in vars(limits).items() if k != "media"}, **vars(limits.media)}


def render(summary: dict[str, Any]) -> str:
    statuses = sorted(summary["by_status"], key=lambda s: (s == "no_response", s))
    env = summary["environment"]
    lines = [f"# Fuzz: {summary['name']}", "", f"- command: `{summary['command']}`",
             f"- git commit: `{summary['git_commit']}`"
             + (" (the tree had uncommitted changes)" if summary["tree_dirty"] else ""),
             f"- {summary['sent']} requests sent ({summary['requested']} asked, seed "
             f"{summary['seed']}, {summary['concurrency']} at a time) in {summary['seconds']} s; "
             f"{summary['unsendable']} drawn requests the client could not send were skipped",
             f"- 5xx responses: **{summary['server_errors']}**; transport errors: "
             f"**{summary['transport_errors']}**; contract violations: "
             f"**{summary['violations']}**",
             f"- replicas unchanged: **{summary['criteria']['replicas_unchanged']}** "
             f"(before {summary['replicas_before']}, after {summary['replicas_after']}); good "
             f"request per modality after: {summary['good_requests']}",
             f"- `uptime` before: `{env['uptime_before']}`; after: `{env['uptime_after']}`",
             f"- result: **{'PASS' if summary['passed'] else 'FAIL'}**", "",
             "| route | " + " | ".join(statuses) + " | total |",
             "|---|" + "---:|" * (len(statuses) + 1)]
    for route, counts in summary["by_route"].items():
        cells = " | ".join(str(counts.get(s, 0)) for s in statuses)
        lines.append(f"| {route} | {cells} | {sum(counts.values())} |")
    for example in summary["violation_examples"][:10]:
        lines += ["", f"- {example['problems']}: `{example['request']}` -> {example['status']}"]
    return "\n".join(lines) + "\n"


def fuzz_main(args: Any, command: str) -> int:
    """The `fuzz` subcommand (bench/cli.py): 0 when every criterion held, else 1."""
    import datetime as dt

    from bench.app_under_test import app_args, app_under_test
    from deployments.core.config import load_config

    name = args.name or dt.datetime.now().strftime("%Y%m%d-%H%M%S") + "-fuzz"
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    with app_under_test(args) as (target, view):
        view.wait_healthy()
        limits = Limits.from_config(load_config(app_args(target)))
        summary = run_fuzz(target.url, view, limits, requests=args.requests,
                           concurrency=args.concurrency, seed=args.seed,
                           timeout_s=args.timeout, headers=headers, name=name,
                           command=command, out=args.out or RESULTS, quiet=args.quiet)
    print(render(summary))
    print(f"summary: {(args.out or RESULTS) / (name + '.json')}", file=sys.stderr)
    return 0 if summary["passed"] else 1
