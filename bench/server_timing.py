"""The stage times the server reported for one request, from the Server-Timing it answered
(serve_app/request_timing.py writes it: `ingress`, `GROUP-handle`, `GROUP-queue`, `GROUP-batch`,
`GROUP-model`, ..., and `total`, arrival to answer).

A record can hold two: the response header, which on a stream stops at its first token, and a
stream's final event (`RequestRecord.server_timing`), which covers the whole request. So the
stages up to the first token come from the header, and the whole request's from the final
event, or from the header of an answer that was not streamed.
"""

from __future__ import annotations

from typing import Any

HEADER = "Server-Timing"
TOTAL = "total"


def parse_server_timing(header: str) -> dict[str, float]:
    """{name: seconds} from a Server-Timing header such as `ingress;dur=1.2, total;dur=1.5`;
    entries without a readable `dur` are left out."""
    entries: dict[str, float] = {}
    for part in header.split(","):
        name, *params = (piece.strip() for piece in part.split(";"))
        for param in params:
            key, _, value = param.partition("=")
            if name and key.strip().lower() == "dur":
                try:
                    entries[name] = float(value.strip().strip('"')) / 1000
                except ValueError:
                    pass
    return entries


def first_token_timing(record: Any) -> dict[str, float] | None:
    """A stream's stages up to its first token; None without a header."""
    header = record.headers.get(HEADER)
    return parse_server_timing(header) if header else None


def whole_timing(record: Any) -> dict[str, float] | None:
    """The whole request's stages; None where the client got none (a stream without its final
    event's timing, or no Server-Timing at all)."""
    text = record.server_timing if record.stream else record.headers.get(HEADER)
    return parse_server_timing(text) if text else None
