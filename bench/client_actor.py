"""The load-generating client: a Ray actor running many asyncio requests at once.

Closed loop: `concurrency` request loops, each sending its next request when the previous one
answers (after a think time, if the spec asks for one). Open loop: requests sent at given
times (Poisson or gamma arrivals), whether or not earlier ones have answered, optionally
capped at `concurrency` in flight. Either stops at a deadline or after a number of measured
requests; requests started during the warm-up are recorded but flagged, so metrics can leave
them out.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.http_client import send
from bench.records import RequestRecord
from bench.refusals import is_limits_refusal, retry_after_s
from bench.workloads.base import Workload


@dataclass
class ClientPlan:
    index: int
    start_at: float  # epoch seconds; every client starts at the same moment
    warmup_s: float
    duration_s: float | None  # None: run until `requests` measured requests were sent
    requests: int | None
    concurrency: int  # closed loop: request loops; open loop: cap on requests in flight (0: none)
    seed: int
    arrivals: list[float] | None = None  # open loop: send times, seconds after start_at
    think_s: float = 0.0  # closed loop: mean pause after each answer (uniform, 0 to 2x)
    retry_refusals: int = 0  # open loop: limits refusals of the last arrivals to retry once
    retry_window_s: float = 1.0  # ... among those sent in this many final seconds


def retry_slot(offset: float, plan: ClientPlan) -> int | None:
    """The retry slot of a request sent `offset` seconds after the start: the plan's last
    `retry_window_s` of arrivals cut into `retry_refusals` equal parts; None outside them."""
    if plan.retry_refusals <= 0 or plan.duration_s is None:
        return None
    end = plan.warmup_s + plan.duration_s
    into = offset - (end - plan.retry_window_s)
    if into < 0 or offset >= end:
        return None
    return min(plan.retry_refusals - 1, int(into / plan.retry_window_s * plan.retry_refusals))


def loop_seed(seed: int, client: int, loop: int) -> int:
    return seed * 1_000_003 + client * 10_007 + loop


class LoadClient:
    """Sends each request to `url`, or, where `routes` names its path, to the server given
    there (a stack of several servers, each serving some routes)."""

    def __init__(self, url: str, workload: Workload, timeout_s: float,
                 routes: dict[str, str] | None = None, api_key: str | None = None) -> None:
        """`api_key`: the key every request sends (a tenant's); None: $MMSERVE_API_KEY."""
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.routes = {path: base.rstrip("/") for path, base in (routes or {}).items()}
        self.workload = workload
        self.timeout_s = timeout_s
        self.records: list[RequestRecord] = []
        self.in_flight = 0
        self.claimed = 0
        self.stopped = False
        self.retried_slots: set[int] = set()
        self.retries: list[asyncio.Task] = []

    def base_url(self, path: str) -> str:
        return self.routes.get(path, self.url)

    def node(self) -> dict[str, str]:
        import ray

        context = ray.get_runtime_context()
        return {"node_id": context.get_node_id(), "ip": ray.util.get_node_ip_address()}

    def progress(self) -> dict[str, int]:
        measured = [r for r in self.records if not r.warmup]
        return {"done": len(measured), "errors": sum(not r.ok for r in measured),
                "warmup": len(self.records) - len(measured), "in_flight": self.in_flight,
                "output_tokens": sum(r.output_tokens or 0 for r in measured if r.ok)}

    def stop(self) -> None:
        self.stopped = True

    async def run(self, plan: ClientPlan) -> list[dict[str, Any]]:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.sleep(max(0.0, plan.start_at - time.time()))
            if plan.arrivals is None:
                await asyncio.gather(*(self._request_loop(session, plan, i)
                                       for i in range(plan.concurrency)))
            else:
                await self._open_loop(session, plan)
        return [record.to_dict() for record in self.records]

    async def _request_loop(self, session: aiohttp.ClientSession, plan: ClientPlan,
                            loop: int) -> None:
        rng = random.Random(loop_seed(plan.seed, plan.index, loop))
        measure_from = plan.start_at + plan.warmup_s
        stop_at = math.inf if plan.duration_s is None else measure_from + plan.duration_s
        while not self.stopped and (now := time.time()) < stop_at:
            warmup = now < measure_from
            if not warmup and plan.requests is not None:
                if self.claimed >= plan.requests:
                    return
                self.claimed += 1
            await self._one(session, self.workload.next_request(rng), warmup, plan.index)
            if plan.think_s > 0:
                await asyncio.sleep(rng.uniform(0, 2 * plan.think_s))

    async def _open_loop(self, session: aiohttp.ClientSession, plan: ClientPlan) -> None:
        rng = random.Random(loop_seed(plan.seed, plan.index, 0))
        slots = asyncio.Semaphore(plan.concurrency) if plan.concurrency > 0 else None
        tasks = []
        for offset in plan.arrivals or ():
            await asyncio.sleep(max(0.0, plan.start_at + offset - time.time()))
            if self.stopped:
                break
            spec = self.workload.next_request(rng)
            warmup = offset < plan.warmup_s
            tasks.append(asyncio.create_task(self._slotted(session, spec, warmup, plan, slots,
                                                           offset)))
        await asyncio.gather(*tasks)
        await asyncio.gather(*self.retries)

    async def _slotted(self, session, spec, warmup: bool, plan: ClientPlan, slots,
                       offset: float) -> None:
        if slots is None:
            record = await self._one(session, spec, warmup, plan.index)
        else:
            async with slots:
                record = await self._one(session, spec, warmup, plan.index)
        self._retry_later(session, spec, record, retry_slot(offset, plan), plan.index)

    async def _one(self, session: aiohttp.ClientSession, spec, warmup: bool, client: int,
                   retry: bool = False) -> RequestRecord:
        self.in_flight += 1
        try:
            record = await send(session, self.base_url(spec.path), spec, self.timeout_s,
                                client, self.api_key)
        finally:
            self.in_flight -= 1
        record.warmup, record.retry = warmup, retry
        self.records.append(record)
        return record

    def _retry_later(self, session, spec, record: RequestRecord, slot: int | None,
                     client: int) -> None:
        """Sends the request again once, its Retry-After after its answer, if it was a limits
        refusal and the first in its retry slot."""
        wait_s = retry_after_s(record)
        if (slot is None or slot in self.retried_slots or wait_s is None
                or not is_limits_refusal(record)):
            return
        self.retried_slots.add(slot)
        due = record.start + (record.end or 0.0) + wait_s

        async def retry() -> None:
            await asyncio.sleep(max(0.0, due - time.time()))
            await self._one(session, spec, False, client, retry=True)
        self.retries.append(asyncio.create_task(retry()))


@functools.cache
def remote_load_client() -> Any:
    """LoadClient as a Ray actor class, made on first use, so this module imports without Ray."""
    import ray

    return ray.remote(LoadClient)
