"""Command line of the load generator.

    python -m bench run --profile cpu --workload chat --concurrency 8 --duration 30s
    python -m bench run --url http://127.0.0.1:8000 --workload mixed --rate 4 --slo e2e=5s
    python -m bench sweep --profile cpu --workload image-embedding --concurrency-list 1,8,32
    python -m bench compare A.json B.json
    python -m bench suite clip|whisper|stacks|llm|serve-llm|cache|observability|slo|tenants
                          [--rounds 3]              (committed, in bench/results/)
    python -m bench ceiling --threads 2             (offline CLIP throughput, one process)
    python -m bench fuzz --profile cpu --requests 10000   (generated requests; bench/results/fuzz)
    python -m bench soak --profile cpu              (sweep, then 10 min at 80% with replica kills)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import signal
import sys
from pathlib import Path

from bench.arrivals import BurstSchedule
from bench.capacity import rate_from_capacity
from bench.environment import git_commit
from bench.load import ARRIVALS, LoadSpec
from bench.objectives import Objectives, parse_objectives
from bench.redact import redact_argv, register_secret
from bench.replica_kill import MODALITY_DEPLOYMENTS
from bench.rounds import DEFAULT_ROUNDS, MIN_ROUNDS
from bench.slo import parse_duration, parse_slo
from bench.suites import NAMES as SUITES
from bench.workloads import NAMES, build_workload
from cluster.deploy import UnknownProfile
from cluster.haproxy_ingress import DEFAULT_INGRESS, INGRESSES

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RUNS_DIR = RESULTS_DIR / "runs"
WRITES_RESULTS = ("run", "sweep", "suite", "fuzz", "soak")


def _add_target(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server under test")
    group.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8000")
    group.add_argument("--profile", help="start it here: a Serve config YAML or args file, a "
                       "profile name (cluster/profiles, bench/profiles), 'baseline', or "
                       "'baseline-serialized' (the earlier baseline: one call per model at a time)")
    group.add_argument("--num-cpus", type=float, default=2,
                       help="logical CPUs of the Ray head started for --profile")
    group.add_argument("--ingress", choices=INGRESSES, default=DEFAULT_INGRESS,
                       help="for --profile: Serve's Python proxy or its HAProxy ingress")
    group.add_argument("--baseline-threads", type=int, default=1)
    group.add_argument("--address", help="Ray cluster for the client actors (default: the "
                       "app's own, RAY_ADDRESS, or a local head started for the run)")
    group.add_argument("--metrics-url", action="append", default=[],
                       help="Prometheus endpoint(s) to scrape; found by itself for --profile "
                       "and --address")
    group.add_argument("--scrape-interval", type=_seconds, default=5.0,
                       help="0 turns scraping off")
    group.add_argument("--scrape-settle", type=_seconds, default=5.5,
                       help="wait after the load before the last scrape: Ray's metrics export "
                       "interval (5 s on clusters the bench starts, 10 s by default)")


def _add_workload(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("workload")
    group.add_argument("--workload", choices=NAMES, default="chat")
    group.add_argument("--prompt-len", default="uniform:32,128",
                       help="chat prompt words: N, uniform:A,B, normal:M,S, lognormal:MED,S, "
                       "choice:A,B")
    group.add_argument("--output-len", default="uniform:16,64", help="max_tokens, same forms")
    group.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True)
    group.add_argument("--image-size", type=int, default=224)
    group.add_argument("--inputs-per-request", type=int, default=1)
    group.add_argument("--language", default=None, help="transcription language (default: "
                       "detected by the server)")
    group.add_argument("--turns", type=int, default=4,
                       help="multi-turn: turns per conversation")
    group.add_argument("--system-prompt-len", type=int, default=400,
                       help="multi-turn: words (about tokens) of the shared system prompt")
    group.add_argument("--media", choices=("image", "audio", "both"), default="both",
                       help="multimodal-chat: the content parts beside the text")
    group.add_argument("--repeat-share", type=float, default=0.5,
                       help="embedding-repeats: share of requests that repeat an image from a "
                       "small pool (the rest are fresh)")
    group.add_argument("--mix", default=None, help="mixed workload weights, e.g. "
                       "chat=4,image-embedding=2,transcription=1,pipeline=1")
    group.add_argument("--chat-model", default="smollm2-135m-instruct")
    group.add_argument("--clip-model", default="clip-vit-b-32")
    group.add_argument("--whisper-model", default="whisper-base")
    group.add_argument("--seed", type=int, default=0)


def _add_load(parser: argparse.ArgumentParser, sweep: bool = False) -> None:
    group = parser.add_argument_group("load")
    group.add_argument("--concurrency", type=int, default=None,
                       help="closed loop: concurrent clients (default 8); with --rate: cap on "
                       "requests in flight (default 0: no cap)")
    if sweep:
        group.add_argument("--concurrency-list", type=_ints, help="e.g. 1,2,4,8,16")
        group.add_argument("--rate-list", type=_floats, help="e.g. 0.5,1,2,4 (req/s)")
        group.add_argument("--attainment", type=float, default=0.9,
                           help="share of requests that must meet the SLO at a level")
    group.add_argument("--rate", type=float, default=None,
                       help="open loop: Poisson arrivals at this many requests/s")
    if not sweep:
        group.add_argument("--capacity-from", type=Path, default=None,
                           help="instead of --rate: a sweep report (JSON) whose highest "
                           "req/s is the capacity; the rate is --times-capacity times it")
        group.add_argument("--times-capacity", type=float, default=1.5)
    group.add_argument("--burstiness", type=float, default=1.0,
                       help="gamma shape of the arrival gaps (1: Poisson, <1: burstier)")
    group.add_argument("--arrivals", choices=ARRIVALS, default="poisson",
                       help="open loop: poisson (one rate) or bursty (a burst of "
                       "--burst-length at --burst-factor x the rate every --burst-period; "
                       "the rate between bursts is lowered so the mean stays --rate)")
    group.add_argument("--burst-period", type=parse_duration, default=60.0,
                       help="bursty: one burst every this long, the first when measuring "
                       "starts (measure whole periods for a mean of --rate)")
    group.add_argument("--burst-length", type=parse_duration, default=10.0)
    group.add_argument("--burst-factor", type=float, default=3.0,
                       help="bursty: the burst's rate over the mean rate")
    group.add_argument("--duration", type=parse_duration, default=30.0,
                       help="measured time after warm-up, e.g. 60s, 2m")
    group.add_argument("--requests", type=int, default=None,
                       help="stop after this many measured requests instead of a duration")
    group.add_argument("--warmup", type=_seconds, default=5.0)
    group.add_argument("--actors", type=int, default=None,
                       help="client actors (default: one per alive Ray node)")
    group.add_argument("--client-cpus", type=float, default=0.0,
                       help="CPUs each client actor reserves in Ray")
    group.add_argument("--timeout", type=parse_duration, default=300.0)
    group.add_argument("--slo", type=parse_slo, default={},
                       help="one SLO for every route, e.g. ttft=500ms,e2e=5s,tpot=50ms,"
                       "itl=200ms,rtf=0.5")
    group.add_argument("--route-slo", type=parse_objectives, default=Objectives.app_defaults(),
                       help="each route's own objective, over the app's defaults: ttft (of "
                       "streams) and e2e by route, e.g. ttft=1s,chat=20s,embeddings=500ms,"
                       "transcriptions=10s,pipeline=20s (or a path: /v1/embeddings=500ms)")


def _add_output(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--out", type=Path, default=None,
                       help=f"folder for the report (default {RUNS_DIR}/<time>-<workload>)")
    group.add_argument("--name", default=None)
    group.add_argument("--records", action="store_true",
                       help="keep every request's record in the JSON (large: for debugging, "
                            "not for committing; reports hold summaries)")
    group.add_argument("--no-plots", action="store_true")
    group.add_argument("--quiet", action="store_true", help="no progress lines")


def _seconds(text: str) -> float:
    return parse_duration(text, allow_zero=True)


def _rounds(text: str) -> int:
    rounds = int(text)
    if rounds < 1:
        raise argparse.ArgumentTypeError(f"--rounds must be at least 1 (verdicts need "
                                         f"{MIN_ROUNDS}), not {rounds}")
    return rounds


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _modalities(text: str) -> tuple[str, ...]:
    """Comma-separated modality names, each one of bench.replica_kill's."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in MODALITY_DEPLOYMENTS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected some of {', '.join(MODALITY_DEPLOYMENTS)}; "
                                         f"got {text!r}")
    return names


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = root.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="one load run and its report")
    sweep = commands.add_parser("sweep", help="one run per concurrency or rate level")
    for sub, is_sweep in ((run, False), (sweep, True)):
        _add_target(sub)
        _add_workload(sub)
        _add_load(sub, is_sweep)
        _add_output(sub)
    compare = commands.add_parser("compare", help="two run reports side by side")
    compare.add_argument("a")
    compare.add_argument("b")
    suite = commands.add_parser("suite", help="the committed benchmarks (bench/results/)")
    suite.add_argument("name", choices=SUITES)
    suite.add_argument("--out", type=Path, default=None)
    suite.add_argument("--duration", type=parse_duration, default=None,
                       help="measured seconds per configuration (default: the suite's)")
    suite.add_argument("--rounds", type=_rounds, default=DEFAULT_ROUNDS,
                       help="rounds of alternated configurations (A B C, A B C, ...); "
                       f"verdicts need at least {MIN_ROUNDS} (default {DEFAULT_ROUNDS})")
    _add_fuzz(commands.add_parser("fuzz", help="generated requests of every kind against "
                                  "the app; every answer must keep the error contract"))
    _add_soak(commands.add_parser("soak", help="the mixed workload for a long time with "
                                  "replicas killed; checks errors and memory growth"))
    for command in WRITES_RESULTS:
        commands.choices[command].add_argument(
            "--allow-dirty", action="store_true",
            help="write into bench/results/ even from a tree with uncommitted changes")
    ceiling = commands.add_parser("ceiling", help="offline batched CLIP throughput")
    ceiling.add_argument("--threads", type=int, default=1)
    ceiling.add_argument("--batch", type=int, default=16)
    ceiling.add_argument("--batches", type=int, default=8)
    ceiling.add_argument("--barrier", default=None, help=argparse.SUPPRESS)
    ceiling.add_argument("--parties", type=int, default=1, help=argparse.SUPPRESS)
    return root


def _add_app_target(parser: argparse.ArgumentParser) -> None:
    """Where the app under fuzz or soak runs, and where Serve's view of its replicas is."""
    group = parser.add_argument_group("app under test")
    group.add_argument("--url", help="a running app, e.g. http://127.0.0.1:8000")
    group.add_argument("--dashboard", help="with --url: its Ray dashboard, e.g. "
                       "http://127.0.0.1:8265 (replicas are found and checked through it)")
    group.add_argument("--app-name", default=None, help="with --url: the Serve application "
                       "(default mmserve)")
    group.add_argument("--profile", help="start the app here from this profile (see `run`)")
    group.add_argument("--num-cpus", type=float, default=2,
                       help="logical CPUs of the Ray head started for --profile")
    group.add_argument("--ingress", choices=INGRESSES, default=DEFAULT_INGRESS)
    group.add_argument("--timeout", type=parse_duration, default=300.0,
                       help="per request")
    group.add_argument("--out", type=Path, default=None)
    group.add_argument("--name", default=None)
    group.add_argument("--quiet", action="store_true", help="no progress lines")


def _add_fuzz(parser: argparse.ArgumentParser) -> None:
    _add_app_target(parser)
    group = parser.add_argument_group("fuzz")
    group.add_argument("--requests", type=int, default=10_000)
    group.add_argument("--concurrency", type=int, default=8)
    group.add_argument("--seed", type=int, default=0, help="the same seed draws the same "
                       "requests")
    group.add_argument("--api-key", default=os.environ.get("MMSERVE_API_KEY"),
                       help="sent as Authorization: Bearer (default $MMSERVE_API_KEY)")


def _add_soak(parser: argparse.ArgumentParser) -> None:
    _add_app_target(parser)
    group = parser.add_argument_group("clients")
    group.add_argument("--address", help="Ray cluster for the client actors (see `run`)")
    _add_workload(parser)
    parser.set_defaults(workload="mixed")
    rate = parser.add_argument_group("rate: --rate, or a fraction of a sweep's best")
    rate.add_argument("--rate", type=float, default=None, help="requests/s, used as given")
    rate.add_argument("--sweep-result", type=Path, default=None,
                      help="a sweep report (JSON) whose best rate under its SLO to take")
    rate.add_argument("--sweep-rates", type=_floats, default=[0.5, 1, 1.5, 2, 3, 4],
                      help="else: the rates of the sweep run first, in this command")
    rate.add_argument("--sweep-duration", type=parse_duration, default=60.0)
    rate.add_argument("--sweep-warmup", type=_seconds, default=10.0)
    rate.add_argument("--slo", type=parse_slo, default=parse_slo("ttft=2s,e2e=30s"))
    rate.add_argument("--attainment", type=float, default=0.9)
    rate.add_argument("--load-fraction", type=float, default=0.8)
    soak = parser.add_argument_group("soak")
    soak.add_argument("--duration", type=parse_duration, default=600.0)
    soak.add_argument("--kill-every", type=parse_duration, default=120.0)
    soak.add_argument("--kill-modalities", type=_modalities, default=("text", "vision", "audio"),
                      help="the groups whose replica is killed, in turn: e.g. `text` to measure "
                      "a text replica's replacement (served again after, per kill)")
    soak.add_argument("--kill-window", type=parse_duration, default=45.0,
                      help="after a kill, how long 503s (and 429s) are expected")
    soak.add_argument("--rss-from", type=_seconds, default=120.0,
                      help="when per-replica memory starts being compared")
    soak.add_argument("--rss-warmup", type=_seconds, default=60.0,
                      help="for a replica started during the soak: after its own start")
    soak.add_argument("--rss-interval", type=parse_duration, default=5.0)
    soak.add_argument("--min-rss-span", type=_seconds, default=60.0)
    soak.add_argument("--max-rss-growth", type=float, default=0.05)


def load_spec(args: argparse.Namespace) -> LoadSpec:
    rate = _offered_rate(args)
    open_loop = rate is not None or getattr(args, "rate_list", None)
    concurrency = args.concurrency if args.concurrency is not None else (0 if open_loop else 8)
    if args.arrivals == "bursty":
        _check_bursts(args, bool(open_loop))
    return LoadSpec(concurrency=concurrency, rate=rate, burstiness=args.burstiness,
                    arrivals=args.arrivals, burst_period_s=args.burst_period,
                    burst_s=args.burst_length, burst_factor=args.burst_factor,
                    duration_s=None if args.requests else args.duration,
                    requests=args.requests, warmup_s=args.warmup, actors=args.actors,
                    client_cpus=args.client_cpus, seed=args.seed, timeout_s=args.timeout)


def _offered_rate(args: argparse.Namespace) -> float | None:
    """--rate, or a multiple of the capacity a sweep measured (bench/capacity.py)."""
    if getattr(args, "capacity_from", None) is None:
        return args.rate
    if args.rate is not None:
        raise SystemExit("give --rate or --capacity-from, not both")
    try:
        return rate_from_capacity(args.capacity_from, args.times_capacity)
    except (OSError, ValueError) as error:
        raise SystemExit(f"--capacity-from: {error}") from None


def _check_bursts(args: argparse.Namespace, open_loop: bool) -> None:
    """Bad burst options fail here, before a server is started for the run."""
    if not open_loop:
        raise SystemExit("--arrivals bursty needs an open loop: give --rate (or --rate-list)")
    try:
        BurstSchedule(1.0, args.burst_period, args.burst_length, args.burst_factor)
    except ValueError as error:
        raise SystemExit(f"--arrivals bursty: {error}") from None


def workload_of(args: argparse.Namespace):
    options = {key: getattr(args, key) for key in (
        "prompt_len", "output_len", "stream", "image_size", "inputs_per_request", "language",
        "mix", "chat_model", "clip_model", "whisper_model", "seed", "turns",
        "system_prompt_len", "media", "repeat_share")}
    return build_workload(args.workload, options)


def default_name(args: argparse.Namespace) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{args.workload}"


def command_line(argv: list[str] | None) -> str:
    """The command as reports record it: keys and URL passwords redacted (bench/redact.py)."""
    return "python -m bench " + shlex.join(redact_argv(sys.argv[1:] if argv is None else argv))


def main(argv: list[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_cleanly)
    args = parser().parse_args(argv)
    register_secret(getattr(args, "api_key", None))
    if args.command in WRITES_RESULTS:
        refuse_dirty_results(args)
    try:
        return _dispatch(args, argv)
    except UnknownProfile as error:
        raise SystemExit(str(error)) from None


def _dispatch(args: argparse.Namespace, argv: list[str] | None) -> int:
    if args.command == "compare":
        from bench.compare import compare

        print(compare(args.a, args.b))
        return 0
    if args.command == "ceiling":
        from bench.ceiling import main as ceiling_main

        return ceiling_main(args)
    if args.command == "fuzz":
        from bench.fuzz import fuzz_main

        return fuzz_main(args, command_line(argv))
    if args.command == "soak":
        from bench.soak import soak_main

        return soak_main(args, command_line(argv))
    if args.command == "suite":
        from bench.suites import run_suite

        run_suite(args.name, args.out, args.duration, command_line(argv), args.rounds)
        return 0
    return _run_or_sweep(args, command_line(argv))


def refuse_dirty_results(args: argparse.Namespace) -> None:
    """A result committed from a dirty tree would not say which code produced it."""
    out = getattr(args, "out", None)
    if args.allow_dirty or (out is not None and not out.resolve().is_relative_to(RESULTS_DIR)):
        return
    commit = git_commit()
    if commit and commit.endswith("-dirty"):
        raise SystemExit(f"the tree has uncommitted changes ({commit}); commit them, write "
                         "elsewhere with --out, or pass --allow-dirty")


def _exit_cleanly(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the Ray head a command started is stopped by its
    `finally`; further signals are ignored, so they cannot cut that cleanup short."""
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def _run_or_sweep(args: argparse.Namespace, command: str) -> int:
    from bench.run import execute_run, open_target, ray_for_clients

    workload = workload_of(args)
    spec = load_spec(args)
    name = args.name or default_name(args)
    out = args.out or RUNS_DIR / name
    options = {"scrape_interval_s": args.scrape_interval,
               "scrape_settle_s": args.scrape_settle, "quiet": args.quiet,
               "include_records": args.records, "make_plots": not args.no_plots,
               "objectives": args.route_slo}
    with open_target(args.url, args.profile, args.metrics_url, args.num_cpus,
                     args.baseline_threads, args.ingress) as target, \
            ray_for_clients(target, args.address):
        if args.command == "sweep":
            from bench.sweep import run_sweep

            if not (args.concurrency_list or args.rate_list):
                raise SystemExit("a sweep needs --concurrency-list or --rate-list")
            result = run_sweep(target, workload, spec, args.slo,
                               args.concurrency_list, args.rate_list, name=name,
                               command=command, out=out, attainment=args.attainment, **options)
            print((out / f"{name}.md").read_text())
        else:
            result = execute_run(target, workload, spec, args.slo, name=name,
                                 command=command, out=out, **options)
            print((out / f"{name}.md").read_text())
    print(f"report: {out / (result['name'] + '.json')}", file=sys.stderr)
    return 0
