"""The model thread gives freed heap back to the system when it runs out of work."""

from __future__ import annotations

import os

from deployments.replicas.free_memory import give_back_free_memory
from deployments.replicas.replica_base import ModelThread


def resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def churn_small_blocks() -> None:
    """Many small blocks freed at once: glibc keeps them in its arena instead of unmapping."""
    blocks = [bytearray(512) for _ in range(400_000)]
    del blocks


def test_trimming_returns_an_arena_of_freed_small_blocks() -> None:
    churn_small_blocks()
    before = resident_mib()
    assert give_back_free_memory()
    assert resident_mib() < before - 50


def test_the_model_thread_trims_after_its_last_queued_call() -> None:
    thread = ModelThread()
    try:
        thread.submit(lambda: None).result()  # the thread exists: its arena is the one to watch
        before = resident_mib()
        thread.submit(churn_small_blocks).result()
        assert resident_mib() < before + 50
    finally:
        thread.shutdown()
