"""The tenants suite's own requests, outside the load: a tenant's GET /v1/usage (admitted and
charged like any request, answered 403 to a tenant that is no admin, without any model call),
to see the limits of a changed tenants file in force, or to empty a tenant's requests bucket
and keep it empty until a load starts; and the admin's GET /v1/usage. Each becomes a
RequestRecord (bench/refusals.py reads it), so what these requests count in a tenant's usage
is tallied like the load's. Standard library only, blocking.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.http_client import ERROR_TEXT_LIMIT, RECORDED_HEADERS, auth_headers
from bench.records import RequestRecord
from bench.refusals import is_limits_refusal

USAGE_PATH = "/v1/usage"
ROUTE = "out-of-band"
TIMEOUT_S = 30.0


def get(url: str, path: str, api_key: str) -> tuple[RequestRecord, bytes]:
    """One GET as the key's tenant: its record and its body."""
    record = RequestRecord(route=ROUTE, start=time.time(), path=path)
    started = time.perf_counter()
    request = urllib.request.Request(url.rstrip("/") + path, headers=auth_headers(api_key))
    body = b""
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            record.status, body = response.status, response.read()
            _take_headers(record, response.headers)
    except urllib.error.HTTPError as error:
        record.status, body = error.code, error.read()
        _take_headers(record, error.headers)
        record.error = body.decode(errors="replace")[:ERROR_TEXT_LIMIT] or "empty error body"
    except (urllib.error.URLError, OSError) as error:
        record.error = f"{type(error).__name__}: {error}"[:ERROR_TEXT_LIMIT]
    record.end = time.perf_counter() - started
    return record, body


def _take_headers(record: RequestRecord, headers: Any) -> None:
    record.retry_after = headers.get("Retry-After")
    record.headers = {name: headers[name] for name in RECORDED_HEADERS if name in headers}


def usage_report(url: str, admin_key: str) -> dict[str, Any]:
    """GET /v1/usage as the admin: every tenant's hourly and daily totals."""
    record, body = get(url, USAGE_PATH, admin_key)
    if record.status != 200:
        raise RuntimeError(f"GET {USAGE_PATH} as the admin answered {record.status}: "
                           f"{record.error}")
    return json.loads(body)


def wait_for_limit(url: str, api_key: str, requests_per_minute: int, in_a_row: int = 6,
                   timeout_s: float = 60.0) -> list[RequestRecord]:
    """Until `in_a_row` answers in a row to the key's tenant say its requests_per_minute is
    the one asked (a changed tenants file is read again on a request, at most every
    reload_interval_s); the records of every request sent."""
    records: list[RequestRecord] = []
    deadline = time.monotonic() + timeout_s
    seen = 0
    while seen < in_a_row:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the ingress replicas did not take requests_per_minute "
                               f"{requests_per_minute} within {timeout_s:g} s")
        record, _ = get(url, USAGE_PATH, api_key)
        records.append(record)
        limit = record.headers.get("x-ratelimit-limit-requests")
        seen = seen + 1 if limit == str(requests_per_minute) else 0
        time.sleep(0.05)
    return records


def empty_requests_bucket(url: str, api_key: str, workers: int = 8,
                          most: int = 100_000) -> list[RequestRecord]:
    """Sends the tenant's GETs from `workers` threads until its limits turn one away: its
    requests bucket is then empty (below one request). Each GET is admitted and answered
    403 without a model call, so emptying a bucket of a minute's requests leaves no backlog
    behind, as the same requests sent to a model would. The records of every request sent."""
    records: list[RequestRecord] = []
    lock, refused = threading.Lock(), threading.Event()

    def send_until_refused() -> None:
        while not refused.is_set():
            record, _ = get(url, USAGE_PATH, api_key)
            with lock:
                records.append(record)
                if is_limits_refusal(record) or len(records) >= most:
                    refused.set()
                elif record.status == 0:
                    refused.set()
                    raise RuntimeError(f"GET {USAGE_PATH} got no answer: {record.error}")

    with ThreadPoolExecutor(workers) as pool:
        for done in [pool.submit(send_until_refused) for _ in range(workers)]:
            done.result()
    return records


class BucketKeeper:
    """Empties a tenant's requests bucket (empty_requests_bucket), then keeps taking what it
    refills, with one GET every half refill interval, until the moment `stop_at` names: a load
    starting then meets an empty bucket, as after a long flood, without the backlog of model
    work that a minute's burst of its own requests would have left. `records`: every request
    sent."""

    def __init__(self, url: str, api_key: str, requests_per_s: float) -> None:
        self.url, self.api_key = url, api_key
        self.pause_s = 0.5 / requests_per_s
        self.records: list[RequestRecord] = []
        self.deadline: float | None = None  # epoch seconds
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._keep, daemon=True, name="bucket-keeper")

    def __enter__(self) -> BucketKeeper:
        self.records += empty_requests_bucket(self.url, self.api_key)
        self.thread.start()
        return self

    def stop_at(self, at: float) -> None:
        self.deadline = at

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()

    def _keep(self) -> None:
        while not self.stopped.is_set():
            if self.deadline is not None and time.time() >= self.deadline:
                return
            record, _ = get(self.url, USAGE_PATH, self.api_key)
            self.records.append(record)
            wait = self.pause_s
            if self.deadline is not None:
                wait = min(wait, max(0.0, self.deadline - time.time()))
            self.stopped.wait(wait)
