"""Serve's buffered log records reach the file within the flusher's interval, not after a
thousand of them."""

from __future__ import annotations

import io
import logging
import logging.handlers
import time

import pytest

from serve_app.log_flush import SERVE_LOGGER, flush_serve_logs, start_log_flusher


@pytest.fixture
def serve_buffer():
    """A buffer like the one throughput-optimized Serve puts on its logger, and its file."""
    file = io.StringIO()
    target = logging.StreamHandler(file)
    buffer = logging.handlers.MemoryHandler(capacity=1000, target=target,
                                            flushLevel=logging.ERROR)
    logger = logging.getLogger(SERVE_LOGGER)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(buffer)
    yield logger, file
    logger.removeHandler(buffer)
    logger.setLevel(level)


def test_a_line_stays_in_serves_buffer_until_it_is_flushed(serve_buffer):
    logger, file = serve_buffer
    logger.info("GET /v1/models 200 1.0ms")
    assert file.getvalue() == ""
    flush_serve_logs()
    assert "GET /v1/models 200" in file.getvalue()


def test_the_flusher_writes_a_buffered_line_with_no_more_logging(serve_buffer):
    logger, file = serve_buffer
    assert start_log_flusher(0.05)
    logger.info("GET /v1/models 200 2.0ms")
    deadline = time.monotonic() + 10
    while "GET /v1/models 200 2.0ms" not in file.getvalue():
        assert time.monotonic() < deadline, "the buffered line never reached the file"
        time.sleep(0.01)


def test_an_interval_of_zero_leaves_serves_buffering_alone():
    assert start_log_flusher(0) is False
