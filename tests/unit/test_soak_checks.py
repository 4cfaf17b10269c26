"""The soak's rules on synthetic records, kills and memory samples (bench/soak_checks.py), and
its schedule and rate choice (bench/soak.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.records import RequestRecord
from bench.soak import SoakPlan, best_rate, kill_times, render, served_again_after, summarize
from bench.soak_checks import (
    RssSample,
    SoakRules,
    effective_status,
    request_checks,
    rss_check,
    rss_growth,
)

RULES = SoakRules(kill_window_before_s=1, kill_window_after_s=30, rss_from_s=120,
                  rss_warmup_s=60, min_rss_span_s=60, max_rss_growth=0.05)
KILLS = [{"deployment": "TextGenerator", "pid": 11, "at": 1120.0}]


def record(start: float, status: int = 200, error: str | None = None,
           retry_after: str | None = None, end: float = 1.0) -> RequestRecord:
    return RequestRecord("chat", start, end=end, status=status, error=error,
                         retry_after=retry_after)


def failing(checks: dict) -> set[str]:
    return {name for name, check in checks.items() if not check["passed"]}


def test_a_clean_soak_passes_every_request_check():
    records = [record(1000 + i) for i in range(50)]
    records.append(record(1119.5, 503, "replica failed", retry_after="5"))
    records.append(record(1125, 503, "replica failed", retry_after="5"))
    assert failing(request_checks(records, KILLS, RULES)) == set()


@pytest.mark.parametrize(("bad", "check"), [
    (record(1125, 500, "the text group failed"), "no_server_error"),
    (record(1125, 504, "deadline"), "no_server_error"),
    (record(1125, 0, "ServerDisconnectedError"), "no_transport_error"),
    (record(1300, 503, "replica failed", retry_after="5"), "unavailable_only_around_kills"),
    (record(1300, 429, "at capacity", retry_after="2"), "unavailable_only_around_kills"),
    (record(1125, 503, "replica failed"), "retry_after_always"),
    (record(1125, 429, "at capacity", retry_after="soon"), "retry_after_always"),
    (record(1125, 400, "bad field"), "no_other_error"),
])
def test_each_kind_of_bad_request_fails_its_own_check(bad, check):
    records = [record(1000 + i) for i in range(10)] + [bad]
    assert failing(request_checks(records, KILLS, RULES)) == {check}


def test_a_request_in_flight_across_the_kill_counts_as_around_it():
    long_before = record(1100, 503, "replica failed", retry_after="5", end=25.0)
    assert failing(request_checks([long_before], KILLS, RULES)) == set()


def test_broken_streams_count_by_their_in_band_code():
    cut = record(1125, 200, "stream error: {'message': 'replica died', 'code': 503}")
    bug = record(1125, 200, "stream error: {'message': 'boom', 'code': 500}")
    silent = record(1300, 200, "stream error: connection closed")
    assert (effective_status(cut), effective_status(bug), effective_status(silent)) == \
        (503, 500, 503)
    assert failing(request_checks([cut], KILLS, RULES)) == set()
    assert failing(request_checks([bug], KILLS, RULES)) == {"no_server_error"}
    assert failing(request_checks([silent], KILLS, RULES)) == {"unavailable_only_around_kills"}


def samples(pid: int, deployment: str, started: float, points: list[tuple[float, int]]):
    return [RssSample(at, deployment, pid, rss, started) for at, rss in points]


def test_rss_is_compared_from_minute_two_and_a_replacement_from_its_own_warm_up():
    start = 1000.0
    steady = samples(1, "Ingress", 900, [(1010, 100), (1120, 200), (1600, 209)])
    grows = samples(2, "ImageEmbedder", 900, [(1120, 200), (1600, 220)])
    replacement = samples(3, "TextGenerator", 1130, [(1140, 50), (1190, 100), (1600, 104)])
    rows = {row["pid"]: row for row in rss_growth(steady + grows + replacement, start, RULES)}
    assert rows[1]["growth"] == pytest.approx(0.045) and rows[1]["passed"]
    assert rows[2]["growth"] == pytest.approx(0.10) and not rows[2]["passed"]
    assert rows[3]["started_during_soak"] and rows[3]["from_s"] == 190
    assert rows[3]["growth"] == pytest.approx(0.04) and rows[3]["passed"]
    check = rss_check(list(rows.values()))
    assert not check["passed"] and check["count"] == 1 and check["compared"] == 3


def test_a_replica_killed_before_its_measuring_span_is_not_compared():
    killed_early = samples(4, "TextGenerator", 900, [(1010, 100), (1110, 300), (1125, 310)])
    [row] = rss_growth(killed_early, 1000.0, RULES)
    assert row["compared"] is False and row["passed"] is None and "needs 60 s" in row["reason"]
    assert rss_check([row])["passed"] is False  # nothing compared proves nothing


def test_kills_every_two_minutes_of_a_ten_minute_soak():
    assert kill_times(SoakPlan(rate=1)) == [120, 240, 360, 480]
    assert kill_times(SoakPlan(rate=1, duration_s=90, kill_every_s=30)) == [30, 60]


def test_the_soak_rate_comes_from_the_best_rate_under_the_slo():
    assert best_rate({"best_under_slo": {"rate": 2.5, "label": "r2.5"}}) == 2.5
    with pytest.raises(SystemExit, match="no rate level"):
        best_rate({"name": "s", "best_under_slo": None})


def test_the_summary_says_when_each_killed_group_served_again_and_renders():
    kill = {"modality": "text", "deployment": "TextGenerator", "pid": 11, "replica_id": "r",
            "at": 1120.0, "replaced_at": 1135.0, "new_pid": 12}
    records = [record(1005 + 10 * i) for i in range(30)]
    records.append(record(1121, 503, "replica failed", retry_after="5"))
    records.append(RequestRecord("transcription", 1121, end=1.0, status=200))  # other group
    assert served_again_after(records, kill) == 6.0  # the chat sent at 1125 ended at 1126
    memory = samples(1, "Ingress", 900, [(1120, 100), (1290, 101)])
    watcher = SimpleNamespace(kills=[kill], samples=memory)
    summary = summarize(records, watcher, SoakPlan(rate=1, duration_s=300), RULES, {},
                        soak_start=1000.0)
    assert summary["passed"] and summary["kills"][0]["served_again_after_s"] == 6.0
    summary.update(name="t", command="python -m bench soak", workload={"name": "mixed"},
                   environment={"git_commit": "abc", "uptime_before": "u", "uptime_after": "u"},
                   rate_source={"kind": "given", "rate": 1})
    text = render(summary)
    assert "**PASS**" in text and "| 120.0 | TextGenerator | 11 | 15.0 | 12 | 6.0 |" in text
