"""Whisper's 30 s windows: how many an audio takes, and a batch split into model calls of a
bounded number of windows, so that no call outlasts the replica's model_call_timeout_s.

Whisper's cost grows with the windows it encodes and decodes, not with the requests: a batch of
8 ten-minute files is 160 windows, one call far longer than a batch of 8 short clips. The
speech replica runs a batch as consecutive calls of at most `max_windows` windows each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

WINDOW_SECONDS = 30
# Seconds one window may take, for a default that fits the timeout on a slow machine:
# whisper-base on one CPU thread takes about 1.2 s per window (bench/results/whisper: ~0.8
# requests/s of one window each); a full 30 s of dense speech decodes more tokens than those
# clips, hence the margin.
CONSERVATIVE_SECONDS_PER_WINDOW = 5.0
# The share of model_call_timeout_s a call is planned to take at that rate.
TIMEOUT_SHARE = 0.5


def windows_in(samples: int, sample_rate: int) -> int:
    """The windows an audio of `samples` takes; an empty audio still takes one."""
    return max(1, math.ceil(samples / (WINDOW_SECONDS * sample_rate)))


def windows_for_seconds(seconds: float) -> int:
    """The windows the longest audio of `seconds` takes."""
    return max(1, math.ceil(seconds / WINDOW_SECONDS))


def default_windows_per_call(model_call_timeout_s: float) -> int:
    """Windows that fit TIMEOUT_SHARE of the timeout at CONSERVATIVE_SECONDS_PER_WINDOW."""
    return max(1, math.floor(model_call_timeout_s * TIMEOUT_SHARE
                             / CONSERVATIVE_SECONDS_PER_WINDOW))


def split_by_windows(window_counts: Sequence[int], max_windows: int) -> list[range]:
    """The items, in order, as consecutive runs of at most `max_windows` windows each: one run
    per model call. An item with more windows than that goes alone (its call is as small as
    it can be)."""
    if max_windows < 1:
        raise ValueError(f"max_windows must be at least 1, not {max_windows}")
    calls: list[range] = []
    start, windows = 0, 0
    for index, count in enumerate(window_counts):
        if index > start and windows + count > max_windows:
            calls.append(range(start, index))
            start, windows = index, 0
        windows += count
    if start < len(window_counts):
        calls.append(range(start, len(window_counts)))
    return calls
