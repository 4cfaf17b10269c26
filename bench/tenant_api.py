"""The tenants suite's own requests, outside the load: a tenant's GET /v1/usage (admitted and
charged like any request, answered 403 to a tenant that is no admin, without any model call),
to see the limits of a changed tenants file in force, or to empty a tenant's requests bucket
and keep it empty until a load starts; one text embedding of as many words as a tenant's
tokens bucket holds, to empty that; and the admin's GET /v1/usage. Each becomes a
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
from bench.workloads.chat import WORDS

USAGE_PATH = "/v1/usage"
EMBEDDINGS_PATH = "/v1/embeddings"
ROUTE = "out-of-band"
TIMEOUT_S = 30.0
# Words per text input: at most 150 words of WORDS (9 letters at most) stay under the app's
# default 2048 characters per input.
WORDS_PER_TEXT = 150


def get(url: str, path: str, api_key: str) -> tuple[RequestRecord, bytes]:
    """One GET as the key's tenant: its record and its body."""
    return call(url, path, api_key)


def call(url: str, path: str, api_key: str, body: dict[str, Any] | None = None,
         route: str = ROUTE) -> tuple[RequestRecord, bytes]:
    """One request as the key's tenant, a POST of `body` as JSON when given, else a GET: its
    record (with the answer's usage, if it succeeded) and its body."""
    record = RequestRecord(route=route, start=time.time(), path=path)
    started = time.perf_counter()
    headers = auth_headers(api_key)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url.rstrip("/") + path, data=data, headers=headers)
    answer = b""
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            record.status, answer = response.status, response.read()
            _take_headers(record, response.headers)
            record.usage = _usage_of(answer)
    except urllib.error.HTTPError as error:
        record.status, answer = error.code, error.read()
        _take_headers(record, error.headers)
        record.error = answer.decode(errors="replace")[:ERROR_TEXT_LIMIT] or "empty error body"
    except (urllib.error.URLError, OSError) as error:
        record.error = f"{type(error).__name__}: {error}"[:ERROR_TEXT_LIMIT]
    record.end = time.perf_counter() - started
    return record, answer


def _usage_of(answer: bytes) -> dict[str, float]:
    try:
        usage = json.loads(answer).get("usage")
    except (ValueError, AttributeError):
        return {}
    return {name: value for name, value in (usage or {}).items()
            if isinstance(value, int | float) and not isinstance(value, bool)}


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


def texts_of_words(words: int, per_text: int = WORDS_PER_TEXT) -> list[str]:
    """Texts of `words` words in all (as the app counts them: split on spaces), at most
    `per_text` a text."""
    sizes = [per_text] * (words // per_text) + ([words % per_text] if words % per_text else [])
    return [" ".join(WORDS[i % len(WORDS)] for i in range(size)) for size in sizes]


def empty_tokens_bucket(url: str, api_key: str, model: str) -> list[RequestRecord]:
    """Reads what the tenant's tokens bucket holds (x-ratelimit-remaining-tokens of a GET) and
    sends one text embedding of that many words, which the app charges when it ends: the
    bucket is then empty, and no flood had to be let in a minute's tokens first. The records
    of both requests."""
    probe, _ = get(url, USAGE_PATH, api_key)
    remaining = int(probe.headers.get("x-ratelimit-remaining-tokens") or 0)
    if remaining <= 0:
        return [probe]
    spent, _ = call(url, EMBEDDINGS_PATH, api_key,
                    {"model": model, "input": texts_of_words(remaining)},
                    route="text-embedding")
    if not spent.ok:
        raise RuntimeError(f"the embedding that empties the tokens bucket failed: "
                           f"{spent.status} {spent.error}")
    return [probe, spent]


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
