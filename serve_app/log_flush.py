"""Serve's buffered replica log, written to its file within an interval.

In throughput-optimized mode (the HAProxy ingress: cluster/haproxy_ingress.py) Serve keeps each
replica's log records in a `MemoryHandler` of 1,000 and writes them to the replica's log file
only when it is full or an ERROR arrives, and logs nothing to stderr: an operator tailing the
ingress's log sees no access line until a thousand have gathered. A daemon thread flushes those
buffers every `interval_s`, so a line reaches the file within it; the records are still written
in batches, off the request's path.
"""

from __future__ import annotations

import logging
import logging.handlers
import threading

SERVE_LOGGER = "ray.serve"

_flusher: threading.Thread | None = None
_lock = threading.Lock()


def serve_log_buffers() -> list[logging.handlers.MemoryHandler]:
    """The buffers Serve put on its logger in this process (read each time: a deployment's
    new logging_config replaces them)."""
    return [handler for handler in logging.getLogger(SERVE_LOGGER).handlers
            if isinstance(handler, logging.handlers.MemoryHandler)]


def flush_serve_logs() -> None:
    for buffer in serve_log_buffers():
        buffer.flush()


def start_log_flusher(interval_s: float) -> bool:
    """Flushes Serve's log buffers every `interval_s` seconds from a daemon thread, one per
    process whatever the calls; 0 leaves Serve's buffering as it is. True if one runs."""
    global _flusher
    if interval_s <= 0:
        return False
    with _lock:
        if _flusher is None:
            _flusher = threading.Thread(target=_flush_every, args=(interval_s,),
                                        name="serve-log-flusher", daemon=True)
            _flusher.start()
    return True


def _flush_every(interval_s: float) -> None:
    never_set = threading.Event()
    while not never_set.wait(interval_s):
        flush_serve_logs()
