"""The goals the app is held to in the mixed suite (bench/suites/stacks.py), against `peers`
(vLLM's own server + the threadpool server) at 16 clients, checked in every round:

- goodput, the requests/s within their route's objective, at least 2x the peers';
- every route's e2e p95 at or below the peers' (a route the peers served none of is beaten);
- throughput, the requests/s answered, at least 1.5x the peers'.

`figures` are the suite's `stack_figures` of one run. Standard library only (no Ray), so the
unit tier checks them.
"""

from __future__ import annotations

from typing import Any

from bench.rounds import number
from bench.suites.goals import at_least, at_most

PEER = "peers"
GOALS = {"goodput_vs_peers": 2.0, "throughput_vs_peers": 1.5}
GOODPUT, THROUGHPUT = "goodput_requests_per_s", "request_throughput"
ROUTE_P95 = "route_e2e_p95"


def route_p95_met(app: dict[str, Any], peers: dict[str, Any]) -> dict[str, bool]:
    """Each route's e2e p95 at or below the peers', every route either served."""
    routes = sorted({*app[ROUTE_P95], *peers[ROUTE_P95]})
    return {route: at_most(app[ROUTE_P95].get(route), peers[ROUTE_P95].get(route))
            for route in routes}


def goals_met(app: dict[str, Any], peers: dict[str, Any]) -> dict[str, Any]:
    """This round's verdicts; the per-route p95s beside the one that needs them all."""
    routes = route_p95_met(app, peers)
    return {"goodput_at_least_2x_peers": at_least(app[GOODPUT], peers[GOODPUT],
                                                  GOALS["goodput_vs_peers"]),
            "every_route_e2e_p95_at_most_peers": bool(routes) and all(routes.values()),
            "throughput_at_least_1_5x_peers": at_least(app[THROUGHPUT], peers[THROUGHPUT],
                                                       GOALS["throughput_vs_peers"]),
            "route_e2e_p95_at_most_peers": routes}


def goal_rows(app: dict[str, Any], peers: dict[str, Any], met: dict[str, Any],
              clients: int, stack: str = "app") -> list[str]:
    """A Markdown table: each goal, the app `stack`'s and the peers' figure, met or not."""
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines = [f"| goal ({stack} against peers, {clients} clients) | {stack} | peers | "
             "this round |",
             "|---|---:|---:|---|",
             f"| within-SLO req/s >= {GOALS['goodput_vs_peers']:g}x | {number(app[GOODPUT])} | "
             f"{number(peers[GOODPUT])} | {verdict(met['goodput_at_least_2x_peers'])} |",
             f"| req/s >= {GOALS['throughput_vs_peers']:g}x | {number(app[THROUGHPUT])} | "
             f"{number(peers[THROUGHPUT])} | {verdict(met['throughput_at_least_1_5x_peers'])} |"]
    lines += [f"| {route} e2e p95 s <= peers' | {number(app[ROUTE_P95].get(route))} | "
              f"{number(peers[ROUTE_P95].get(route))} | {verdict(ok)} |"
              for route, ok in met["route_e2e_p95_at_most_peers"].items()]
    return lines
