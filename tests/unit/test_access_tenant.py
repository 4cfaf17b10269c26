"""Serve's access line of a request carries the tenant the ingress noted for its request id."""

from __future__ import annotations

import logging

import pytest

from serve_app.access_tenant import AccessLogTenants, access_log_tenants


@pytest.fixture
def access_log():
    """A logger with the filter and what it let through, as Serve's access lines are logged."""
    logger = logging.getLogger("test-access-tenant")
    tenants = AccessLogTenants(max_noted=2)
    logger.addFilter(tenants)
    logger.propagate = False
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    yield logger, tenants, seen
    logger.removeHandler(handler)
    logger.removeFilter(tenants)


def access(logger: logging.Logger, request_id: str) -> None:
    logger.warning("GET /v1/models 200 1.0ms",
                   extra={"serve_access_log": True, "request_id": request_id})


def test_the_access_line_names_the_noted_tenant_once(access_log):
    logger, tenants, seen = access_log
    tenants.note("req-1", "team-a")
    access(logger, "req-1")
    access(logger, "req-1")
    assert seen == ["GET /v1/models 200 1.0ms tenant=team-a", "GET /v1/models 200 1.0ms"]


def test_other_lines_and_other_requests_are_left_alone(access_log):
    logger, tenants, seen = access_log
    tenants.note("req-1", "team-a")
    logger.warning("model loaded", extra={"request_id": "req-1"})
    access(logger, "req-2")
    access(logger, "req-1")
    assert seen == ["model loaded", "GET /v1/models 200 1.0ms",
                    "GET /v1/models 200 1.0ms tenant=team-a"]


def test_notes_past_the_cap_drop_the_oldest(access_log):
    logger, tenants, seen = access_log
    for number in range(3):
        tenants.note(f"req-{number}", f"t{number}")
    for number in range(3):
        access(logger, f"req-{number}")
    assert seen == ["GET /v1/models 200 1.0ms", "GET /v1/models 200 1.0ms tenant=t1",
                    "GET /v1/models 200 1.0ms tenant=t2"]


def test_one_filter_per_process_on_serves_logger():
    first = access_log_tenants()
    try:
        assert access_log_tenants() is first
        assert first in logging.getLogger("ray.serve").filters
    finally:
        logging.getLogger("ray.serve").removeFilter(first)
