"""Who is told how a request was served: `X-Cache` (what the response cache did),
`Server-Timing` (each stage's time) and the `server_timing` of a stream's final event.

They tell more than the answer does. Through a cache shared by several tenants, `X-Cache: hit`
says that someone sent this very input recently, and so does a Server-Timing without a replica
entry; Server-Timing's queue and batch entries also show how busy the replicas are with other
tenants' work. So they go only to the tenants whose entry in the tenants file says
`diagnostics: true`, to the plain API keys' tenant `default` (unless the file defines it), and to
everyone while the API is anonymous (one caller's view, as before tenants). A request
whose tenant is not known (no key or a wrong one, a health probe on a keyed API) gets none.
"""

from __future__ import annotations

from serve_app.tenants import Tenant

CACHE_HEADER = "X-Cache"
TIMING_HEADER = "Server-Timing"
FINAL_EVENT_TIMING = "server_timing"


def allowed(anonymous_api: bool, tenant: Tenant | None) -> bool:
    """Whether a request served for `tenant` (None: none known) is shown the diagnostics."""
    if anonymous_api:
        return True
    return tenant is not None and tenant.diagnostics


def headers(shown: bool, cache_state: str | None, server_timing: str | None
            ) -> dict[str, str]:
    """The diagnostics headers of one answer: none unless `shown`, and of those only the ones
    that have a value (the cache took part; Server-Timing is on)."""
    if not shown:
        return {}
    present = {CACHE_HEADER: cache_state, TIMING_HEADER: server_timing}
    return {name: value for name, value in present.items() if value is not None}


def final_event(shown: bool, server_timing: str | None) -> dict[str, str]:
    """What a stream's final event adds: the whole stream's Server-Timing, when shown."""
    if not shown or server_timing is None:
        return {}
    return {FINAL_EVENT_TIMING: server_timing}
