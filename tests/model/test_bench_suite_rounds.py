"""A suite in rounds: each round summarized on its own, the rounds merged into one report
whose verdicts hold only when every round's do, with the CPU and the tree's state in its
header."""

from __future__ import annotations

import json

from bench.suites.common import Round, Suite


def test_a_suite_report_merges_its_rounds(tmp_path):
    suite = Suite("demo", "python -m bench suite demo", tmp_path, 10.0, rounds=3)
    speeds = iter([1.2, 0.9, 1.1])
    order = []

    def one_round(round_: Round) -> tuple[dict, str]:
        speed = next(speeds)
        for configuration in ("A", "B"):
            order.append((round_.number, configuration))
        round_.extra["note"] = round_.number
        return ({"ratio": speed, "goal_met": speed >= 1.0, "clients": 16},
                f"round {round_.number}: {speed}\n")

    document = suite.in_rounds(one_round, lambda merged, rounds: f"across {len(rounds)}\n")
    assert order == [(1, "A"), (1, "B"), (2, "A"), (2, "B"), (3, "A"), (3, "B")]
    results = document["results"]
    assert results["ratio"]["median"] == 1.1
    assert (results["ratio"]["min"], results["ratio"]["max"]) == (0.9, 1.2)
    assert results["goal_met"]["verdict"] == "not met: 2/3"
    assert [r["extra"]["note"] for r in document["rounds"]] == [1, 2, 3]
    text = (tmp_path / "demo.md").read_text()
    assert "- CPU: " in text and "3 alternated rounds" in text
    assert text.index("across 3") < text.index("## Across 3 rounds") < text.index("## Round 1")
    assert "| goal_met | 2/3 | **not met: 2/3** |" in text
    assert "round 2: 0.9" in text
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert saved["schema"] == "mmserve-bench/suite/2" and saved["rounds_run"] == 3
