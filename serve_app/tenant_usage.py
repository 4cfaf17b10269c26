"""What each tenant used, as the ingress counts it once a request has ended: one request, and
what its replica calls showed they used (serve_app/request_tenant.py: prompt and completion
tokens, images, audio seconds, model seconds per replica group). Counted twice over:

- as Prometheus counters labelled by tenant (ray_mmserve_tenant_*, docs/operations.md), which
  every ingress replica exports and Prometheus adds up;
- in hourly and daily totals (serve_app/usage_totals.py) that GET /v1/usage reports to admin
  tenants: in the app's Redis when `cache.redis_url` is set (serve_app/redis_usage.py), else in
  each ingress replica's memory (serve_app/usage_ledger.py).

The anonymous API's requests count as the tenant `anonymous` (an API with no key has no
tenants file, so no tenant of that name can be listed beside it). A request counts once it was
admitted (its key and its limits let it in), whatever its answer.
"""

from __future__ import annotations

from collections.abc import Mapping

from deployments.core.config import AppConfig
from deployments.replicas import metrics
from serve_app.http_errors import HttpError
from serve_app.redis_connection import redis_target
from serve_app.request_tenant import Usage
from serve_app.tenants import Tenant
from serve_app.usage_ledger import MemoryUsageLedger, UsageLedger
from serve_app.usage_totals import MODEL_SECONDS

ANONYMOUS = "anonymous"
USAGE_PATH = "/v1/usage"


class TenantUsage:
    def __init__(self, ledger: UsageLedger) -> None:
        self.ledger = ledger

    def record(self, tenant: Tenant | None, usage: Usage) -> None:
        """Counts one ended request of `tenant` (None: the anonymous API)."""
        name = ANONYMOUS if tenant is None else tenant.name
        counts = {"requests": 1.0, **usage.counts()}
        count_in_metrics(name, counts)
        self.ledger.record(name, counts)


def count_in_metrics(tenant: str, counts: Mapping[str, float]) -> None:
    """One request's counts on the ray_mmserve_tenant_* counters."""
    tags = {"tenant": tenant}
    metrics.add(metrics.tenant_requests(), counts.get("requests", 0.0), tags)
    for kind in ("prompt", "completion"):
        metrics.add(metrics.tenant_tokens(), counts.get(f"{kind}_tokens", 0.0),
                    {**tags, "kind": kind})
    metrics.add(metrics.tenant_images(), counts.get("images", 0.0), tags)
    metrics.add(metrics.tenant_audio_seconds(), counts.get("audio_seconds", 0.0), tags)
    for name, seconds in counts.items():
        if name.startswith(MODEL_SECONDS):
            metrics.add(metrics.tenant_model_seconds(), seconds,
                        {**tags, "group": name.removeprefix(MODEL_SECONDS)})


def require_admin(tenant: Tenant | None) -> None:
    """Lets an admin tenant read every tenant's usage; a 403 for any other caller (the
    request has passed its key check already: no key is a 401 before this)."""
    if tenant is None:
        raise HttpError(403, f"{USAGE_PATH} needs the key of a tenant with admin: true, and "
                        f"this API is anonymous (no key or tenants file is configured)")
    if not tenant.admin:
        raise HttpError(403, f"the tenant {tenant.name} may not read {USAGE_PATH}: only "
                        f"tenants with admin: true in the tenants file may")


def make_usage_ledger(config: AppConfig) -> UsageLedger:
    """In the app's Redis (cache.redis_url) when it is set; else in this process."""
    settings = config.ingress.usage
    target = redis_target(config.cache)
    if target is None:
        return MemoryUsageLedger(settings.hours_kept, settings.days_kept)
    from serve_app.redis_usage import RedisUsageLedger

    return RedisUsageLedger(target.url, settings.key_prefix, settings.hours_kept,
                            settings.days_kept, settings.flush_interval_s,
                            settings.redis_timeout_s, username=target.username,
                            password=target.password)
