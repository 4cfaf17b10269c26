"""A Whisper batch split into model calls of a bounded number of 30 s windows, and the config
that bounds them so a call fits model_call_timeout_s."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployments.core.audio_windows import (
    default_windows_per_call,
    split_by_windows,
    windows_for_seconds,
    windows_in,
)
from deployments.core.config import AudioSettings

RATE = 16_000


def test_an_audio_takes_one_window_per_started_30_seconds():
    assert windows_in(0, RATE) == 1  # an empty audio still gets its window
    assert windows_in(30 * RATE, RATE) == 1
    assert windows_in(30 * RATE + 1, RATE) == 2
    assert windows_in(600 * RATE, RATE) == 20
    assert windows_for_seconds(600) == 20 and windows_for_seconds(601) == 21


def test_eight_ten_minute_files_become_calls_within_the_bound():
    counts = [windows_in(600 * RATE, RATE)] * 8  # 160 windows in all
    calls = split_by_windows(counts, 30)
    assert [list(call) for call in calls] == [[i] for i in range(8)]
    assert all(sum(counts[i] for i in call) <= 30 for call in calls)


def test_calls_keep_arrival_order_and_cover_every_item_once():
    counts = [1, 1, 20, 5, 5, 1, 30, 2]
    calls = split_by_windows(counts, 30)
    assert [list(call) for call in calls] == [[0, 1, 2, 3], [4, 5], [6], [7]]
    assert [i for call in calls for i in call] == list(range(len(counts)))
    assert all(sum(counts[i] for i in call) <= 30 for call in calls)


def test_short_clips_share_one_call():
    assert [list(call) for call in split_by_windows([1] * 8, 30)] == [list(range(8))]


def test_an_item_above_the_bound_goes_alone():
    assert [list(call) for call in split_by_windows([2, 40, 2], 30)] == [[0], [1], [2]]


def test_no_items_no_calls_and_the_bound_is_positive():
    assert split_by_windows([], 30) == []
    with pytest.raises(ValueError):
        split_by_windows([1], 0)


def test_the_default_bound_fits_half_the_timeout_at_five_seconds_a_window():
    assert default_windows_per_call(300) == 30
    assert AudioSettings().windows_per_call() == 30
    assert AudioSettings(model_call_timeout_s=600).windows_per_call() == 60
    assert AudioSettings(max_windows_per_call=24).windows_per_call() == 24


def test_a_bound_below_one_longest_audio_is_refused_at_start():
    with pytest.raises(ValidationError, match="max_duration_s"):
        AudioSettings(max_windows_per_call=10)  # 600 s: 20 windows
    with pytest.raises(ValidationError, match="max_windows_per_call"):
        AudioSettings(model_call_timeout_s=60)  # its default: 6 windows
    assert AudioSettings(model_call_timeout_s=60, max_duration_s=180).windows_per_call() == 6
