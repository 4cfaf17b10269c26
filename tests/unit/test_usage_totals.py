"""Usage per tenant, per UTC hour and day, in one ingress replica's memory: each request in the
hour and the day it ended (an injected clock), the report's shape, old periods forgotten."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from serve_app.usage_ledger import MemoryUsageLedger
from serve_app.usage_totals import iso, oldest_kept, period_start
from tests.unit.fake_clock import FakeClock


def moment(at: str) -> float:
    return datetime.strptime(at, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


def report(ledger: MemoryUsageLedger) -> dict:
    return asyncio.run(ledger.report())


CHAT = {"requests": 1, "prompt_tokens": 30, "completion_tokens": 5, "model_seconds.text": 0.25}
TRANSCRIPTION = {"requests": 1, "audio_seconds": 12.5, "model_seconds.audio": 1.5}


def test_periods_start_on_the_utc_hour_and_day():
    at = moment("2026-12-07T15:59:59")
    assert iso(period_start("hour", at)) == "2026-12-07T15:00:00Z"
    assert iso(period_start("day", at)) == "2026-12-07T00:00:00Z"
    assert iso(period_start("hour", at + 1)) == "2026-12-07T16:00:00Z"
    assert oldest_kept(at, 3, 2) == {"hour": moment("2026-12-07T13:00:00"),
                                     "day": moment("2026-12-06T00:00:00")}


def test_requests_add_up_in_their_hour_and_their_day_per_tenant():
    clock = FakeClock(moment("2026-12-07T15:10:00"))
    ledger = MemoryUsageLedger(hours_kept=48, days_kept=7, clock=clock)
    ledger.record("team-a", CHAT)
    clock.now += 20 * 60
    ledger.record("team-a", CHAT)
    ledger.record("team-b", TRANSCRIPTION)
    clock.now += 60 * 60  # 16:30
    ledger.record("team-a", CHAT)
    usage = report(ledger)
    assert usage["object"] == "usage" and usage["store"] == "replica"
    assert list(usage["tenants"]) == ["team-a", "team-b"]
    team_a = usage["tenants"]["team-a"]
    assert team_a["hours"] == [
        {"start": "2026-12-07T15:00:00Z", "requests": 2, "prompt_tokens": 60,
         "completion_tokens": 10, "images": 0, "audio_seconds": 0.0,
         "model_seconds": {"text": 0.5}},
        {"start": "2026-12-07T16:00:00Z", "requests": 1, "prompt_tokens": 30,
         "completion_tokens": 5, "images": 0, "audio_seconds": 0.0,
         "model_seconds": {"text": 0.25}}]
    assert team_a["days"] == [
        {"start": "2026-12-07T00:00:00Z", "requests": 3, "prompt_tokens": 90,
         "completion_tokens": 15, "images": 0, "audio_seconds": 0.0,
         "model_seconds": {"text": 0.75}}]
    team_b = usage["tenants"]["team-b"]
    assert [row["audio_seconds"] for row in team_b["hours"] + team_b["days"]] == [12.5, 12.5]
    assert team_b["days"][0]["model_seconds"] == {"audio": 1.5}


def test_the_days_sum_the_hours_across_midnight():
    clock = FakeClock(moment("2026-12-07T23:59:30"))
    ledger = MemoryUsageLedger(hours_kept=48, days_kept=7, clock=clock)
    ledger.record("team-a", CHAT)
    clock.now += 60
    ledger.record("team-a", CHAT)
    team_a = report(ledger)["tenants"]["team-a"]
    assert [row["start"] for row in team_a["days"]] == ["2026-12-07T00:00:00Z",
                                                        "2026-12-08T00:00:00Z"]
    assert [row["start"] for row in team_a["hours"]] == ["2026-12-07T23:00:00Z",
                                                         "2026-12-08T00:00:00Z"]
    assert sum(row["prompt_tokens"] for row in team_a["days"]) == sum(
        row["prompt_tokens"] for row in team_a["hours"]) == 60


def test_hours_and_days_past_what_is_kept_are_forgotten():
    clock = FakeClock(moment("2026-12-07T10:00:00"))
    ledger = MemoryUsageLedger(hours_kept=2, days_kept=2, clock=clock)
    ledger.record("team-a", CHAT)
    clock.now += 3600
    ledger.record("team-a", CHAT)
    assert len(report(ledger)["tenants"]["team-a"]["hours"]) == 2
    clock.now += 3600  # 12:00: the 10:00 hour is the third back
    hours = report(ledger)["tenants"]["team-a"]["hours"]
    assert [row["start"] for row in hours] == ["2026-12-07T11:00:00Z"]
    clock.now += 2 * 86400
    assert report(ledger)["tenants"] == {}


def test_fractions_stay_exact_enough_for_a_bill():
    clock = FakeClock(moment("2026-12-07T10:00:00"))
    ledger = MemoryUsageLedger(hours_kept=1, days_kept=1, clock=clock)
    for _ in range(1000):
        ledger.record("team-a", {"requests": 1, "audio_seconds": 0.1})
    day = report(ledger)["tenants"]["team-a"]["days"][0]
    assert day["requests"] == 1000
    assert day["audio_seconds"] == pytest.approx(100.0, abs=1e-6)
