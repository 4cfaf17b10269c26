"""The tenant in Serve's access line.

Serve writes each request's access line in the ingress replica (method, route, status, latency,
and the request id) once the request's own code has finished, outside that code's context. The
ingress notes each authenticated request's tenant under its request id; this filter on Serve's
logger takes it back when the access line is logged and appends ` tenant=NAME`.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

SERVE_LOGGER = "ray.serve"
# Notes whose access line never came (none should) are dropped oldest first past this many.
MAX_NOTED = 10_000


class AccessLogTenants(logging.Filter):
    def __init__(self, max_noted: int = MAX_NOTED) -> None:
        super().__init__()
        self._tenants: OrderedDict[str, str] = OrderedDict()
        self._max_noted = max_noted
        self._lock = threading.Lock()

    def note(self, request_id: str, tenant: str) -> None:
        with self._lock:
            self._tenants[request_id] = tenant
            while len(self._tenants) > self._max_noted:
                self._tenants.popitem(last=False)

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = getattr(record, "request_id", None)
        if getattr(record, "serve_access_log", False) and request_id:
            with self._lock:
                tenant = self._tenants.pop(request_id, None)
            if tenant is not None and isinstance(record.msg, str):
                record.msg = f"{record.msg} tenant={tenant}"
        return True


def access_log_tenants() -> AccessLogTenants:
    """The process's filter on Serve's logger, installed on the first call."""
    logger = logging.getLogger(SERVE_LOGGER)
    for existing in logger.filters:
        if isinstance(existing, AccessLogTenants):
            return existing
    installed = AccessLogTenants()
    logger.addFilter(installed)
    return installed
