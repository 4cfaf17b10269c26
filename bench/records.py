"""One record per request, and the per-request metrics derived from it.

Times inside a record are seconds after its own `start` (an epoch time taken once, on the client
that sent it); durations are measured with a monotonic clock. The first streamed token
defines TTFT; inter-token latencies are the gaps between later tokens, never the first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RequestRecord:
    route: str
    start: float  # epoch seconds when the request was sent
    path: str = ""  # the URL path it was sent to: its route's objective (bench/objectives.py)
    stream: bool = False
    end: float | None = None  # seconds after start: the whole response has arrived
    first_byte: float | None = None
    token_times: list[float] = field(default_factory=list)  # arrival of each streamed token
    status: int = 0  # HTTP status; 0 when no response came (connection error, timeout)
    error: str | None = None
    retry_after: str | None = None  # the Retry-After header of a 429 or 503
    request_bytes: int = 0
    response_bytes: int = 0
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    items: int = 1  # inputs served: embeddings in the request, 1 otherwise
    audio_duration_s: float | None = None
    wer: float | None = None  # word error rate of a transcript against its known text
    stages: dict[str, float] = field(default_factory=dict)  # the pipeline's server timings
    headers: dict[str, str] = field(default_factory=dict)  # RECORDED_HEADERS of the answer
    usage: dict[str, float] = field(default_factory=dict)  # the answer's `usage` object
    # A stream's Server-Timing from its final event: the whole request (its header's stops at
    # the first token)
    server_timing: str | None = None
    warmup: bool = False
    client: int = 0
    retry: bool = False  # a refused request sent again once, after its Retry-After

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status < 300 and self.end is not None

    def e2e(self) -> float | None:
        return self.end if self.ok else None

    def ttft(self) -> float | None:
        return self.token_times[0] if self.ok and self.stream and self.token_times else None

    def itls(self) -> list[float]:
        if not self.ok or not self.stream:
            return []
        times = self.token_times
        return [later - earlier for earlier, later in zip(times, times[1:])]

    def tpot(self) -> float | None:
        """Mean time per output token after the first: (e2e - ttft) / (tokens - 1)."""
        ttft, tokens = self.ttft(), self.output_tokens or len(self.token_times)
        if ttft is None or tokens < 2:
            return None
        return (self.end - ttft) / (tokens - 1)

    def rtf(self) -> float | None:
        """Real-time factor: seconds of processing per second of audio (below 1 is faster)."""
        if not self.ok or not self.audio_duration_s:
            return None
        return self.end / self.audio_duration_s

    def finished_at(self) -> float | None:
        return None if self.end is None else self.start + self.end

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestRecord:
        return cls(**data)
