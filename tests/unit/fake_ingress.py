"""An HTTP server on loopback that answers a tenant's requests as the ingress does at
admission, for the bench's client tests: the real TenantLimits over MemoryBuckets (on the
clock given) decide; an admitted request gets `admitted_status` and `admitted_body`, a refused
one the app's own 429 (its JSON error body and Retry-After); both carry the x-ratelimit-*
headers. It records the Authorization header and the body of every request."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from serve_app.http_errors import error_body, error_headers
from serve_app.tenant_limits import TenantLimits
from serve_app.tenants import Tenant
from serve_app.token_buckets import MemoryBuckets


class FakeIngress:
    def __init__(self, tenant: Tenant, clock: Callable[[], float], admitted_status: int = 200,
                 admitted_body: dict | None = None, retry_after: str | None = None,
                 get_status: int | None = None) -> None:
        """`retry_after`: sent in place of the app's Retry-After (a test that must not wait
        the app's whole seconds); `get_status`: an admitted GET's status, with an empty JSON
        body (as the app's 403 to a GET of /v1/usage by a tenant that is no admin), where it
        differs from a POST's."""
        self.tenant, self.limits = tenant, TenantLimits(MemoryBuckets(clock))
        self.admitted_status, self.admitted_body = admitted_status, admitted_body or {}
        self.retry_after, self.get_status = retry_after, get_status
        self.authorizations: list[str | None] = []
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeIngress:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, authorization: str | None, body: bytes = b"", get: bool = False
               ) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.authorizations.append(authorization)
            self.bodies.append(body)
            admission = asyncio.run(self.limits.admit(self.tenant))
        headers = admission.headers()
        if admission.refusal is None and get and self.get_status is not None:
            return self.get_status, headers, b"{}"
        if admission.refusal is None:
            return self.admitted_status, headers, json.dumps(self.admitted_body).encode()
        headers.update(error_headers(admission.refusal))
        if self.retry_after is not None:
            headers["Retry-After"] = self.retry_after
        return 429, headers, json.dumps(error_body(admission.refusal)).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        ingress = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._reply(b"", get=True)

            def do_POST(self) -> None:
                self._reply(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _reply(self, sent: bytes, get: bool = False) -> None:
                status, headers, body = ingress.answer(self.headers.get("Authorization"), sent,
                                                       get)
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json",
                                    "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
