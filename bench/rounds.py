"""Rounds: a suite measures its configurations in turn (A B C), then again, at least three times
in one run (A B C, A B C, A B C), so a slow minute of a shared machine lands on every
configuration alike instead of on one.

Each round is summarized on its own (the suite's `summarize`, as for a single run); this module
merges the rounds' results:

- a number becomes {"median", "min", "max", "rounds": [one value a round]};
- a verdict (a boolean: a goal met, a lead held) counts as met only when every round meets
  it, and only with at least MIN_ROUNDS rounds: {"met", "rounds_met", "rounds", "verdict"},
  the verdict read "met in 3/3 rounds", "not met: 2/3" or "no verdict: 2 rounds, 3 needed";
- anything else (names, settings) is kept when every round has the same, else listed by round.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

MIN_ROUNDS = 3
DEFAULT_ROUNDS = 3


def spread(values: Iterable[float | None]) -> dict[str, Any]:
    """Median, min and max of the rounds' values (rounds without one left out), and the values
    themselves in round order."""
    values = list(values)
    known = [v for v in values if v is not None]
    if not known:
        return {"median": None, "min": None, "max": None, "rounds": values}
    return {"median": statistics.median(known), "min": min(known), "max": max(known),
            "rounds": values}


def verdict(values: Sequence[bool | None], min_rounds: int = MIN_ROUNDS) -> dict[str, Any]:
    """A goal over rounds: met only when it is met in every round, and there are enough."""
    rounds = len(values)
    met_in = sum(bool(v) for v in values)
    if rounds < min_rounds:
        text = f"no verdict: {rounds} round{'s' * (rounds != 1)}, {min_rounds} needed"
        return {"met": False, "rounds_met": met_in, "rounds": rounds, "verdict": text}
    met = met_in == rounds
    text = f"met in {met_in}/{rounds} rounds" if met else f"not met: {met_in}/{rounds}"
    return {"met": met, "rounds_met": met_in, "rounds": rounds, "verdict": text}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def merge(results: Sequence[Any], min_rounds: int = MIN_ROUNDS) -> Any:
    """One result tree from the rounds' trees (same shape each round, as one summarize makes
    them): numbers spread, booleans judged, dicts merged key by key (a key missing in a round
    counts as None there), the rest kept or listed."""
    present = [r for r in results if r is not None]
    if not present:
        return None
    if all(isinstance(r, dict) for r in present):
        keys = list(dict.fromkeys(k for r in present for k in r))
        return {key: merge([r.get(key) if isinstance(r, dict) else None for r in results],
                           min_rounds) for key in keys}
    if all(isinstance(r, bool) for r in present):
        return verdict([r if isinstance(r, bool) else None for r in results], min_rounds)
    if all(is_number(r) for r in present):
        return spread(r if is_number(r) else None for r in results)
    if all(r == results[0] for r in results):
        return results[0]
    return {"rounds": list(results)}


def is_spread(node: Any) -> bool:
    return isinstance(node, dict) and set(node) == {"median", "min", "max", "rounds"}


def is_verdict(node: Any) -> bool:
    return isinstance(node, dict) and set(node) == {"met", "rounds_met", "rounds", "verdict"}


def leaves(tree: Any, path: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], Any]]:
    """(path, node) for every spread and verdict of a merged tree, depth first."""
    if is_spread(tree) or is_verdict(tree):
        yield path, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from leaves(value, (*path, str(key)))


def number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"


def median_range(node: dict[str, Any], digits: int = 3) -> str:
    """'12.3 (11.9-13.0)': the median and, in brackets, the min-max across rounds."""
    if node["median"] is None:
        return "-"
    return (f"{number(node['median'], digits)} ({number(node['min'], digits)}-"
            f"{number(node['max'], digits)})")


def verdict_lines(merged: Any) -> list[str]:
    """A Markdown table of every verdict: met only where every round met it."""
    rows = [(path, node) for path, node in leaves(merged) if is_verdict(node)]
    if not rows:
        return []
    lines = ["| goal (met only when every round meets it) | rounds met | verdict |",
             "|---|---:|---|"]
    lines += [f"| {'.'.join(path)} | {node['rounds_met']}/{node['rounds']} | "
              f"{'**' + node['verdict'] + '**' if not node['met'] else node['verdict']} |"
              for path, node in rows]
    return lines


def spread_lines(merged: Any, skip_constant: bool = True) -> list[str]:
    """A Markdown table of every number: median, min-max and each round's value. Numbers
    that are the same in every round (settings, goals) are left out when `skip_constant`."""
    rows = [(path, node) for path, node in leaves(merged) if is_spread(node)
            and not (skip_constant and _constant(node))]
    if not rows:
        return []
    rounds = max(len(node["rounds"]) for _, node in rows)
    lines = ["| metric | median | min-max | " + " | ".join(f"round {i}" for i in
                                                           range(1, rounds + 1)) + " |",
             "|---|---:|---:|" + "---:|" * rounds]
    for path, node in rows:
        cells = " | ".join(number(v) for v in node["rounds"])
        lines.append(f"| {'.'.join(path)} | {number(node['median'])} | "
                     f"{number(node['min'])}-{number(node['max'])} | {cells} |")
    return lines


def _constant(node: dict[str, Any]) -> bool:
    values = node["rounds"]
    return all(v == values[0] for v in values)


def render(merged: Any, rounds: int) -> str:
    """The across-rounds part of a suite's report: verdicts, then every number's spread."""
    lines = [f"## Across {rounds} rounds", "",
             f"Each configuration ran once a round, the rounds alternating (A B C, A B C, ...). "
             f"Numbers: the median of the rounds and their min-max; a goal is met only when every "
             f"round meets it (at least {MIN_ROUNDS} rounds).", ""]
    verdicts = verdict_lines(merged)
    if verdicts:
        lines += [*verdicts, ""]
    lines += spread_lines(merged) or ["(no number differs between rounds)"]
    return "\n".join(lines) + "\n"
