"""HAProxy in front of every node's Serve proxy: the one address clients of the local cluster
send traffic to, so that losing a node (the head included) does not lose the ingress.

With `proxy_location: EveryNode` Serve runs a proxy on each node, all on the profile's
`http_options.port`. On one machine they cannot share a port as separate hosts would, so each
worker node's proxy gets its own (Ray's `RAY_SERVE_WORKER_PROXY_HTTP_PORT`, set in the node's
environment), and this HAProxy lists them all. It checks each proxy's own health route
(`/-/healthz`, answered by the proxy itself) every second and takes a proxy out after two
failed checks; a request whose connection to a proxy fails, or whose proxy closes without a
byte of answer, is sent to another at once. `/readyz`
is not the check: every proxy answers it alike (it asks the replica groups), so a group down
would take every proxy out.

A node lost mid-request (its raylet and workers killed) is never a 5xx other than 503: a proxy
that dies before answering would be HAProxy's 502, and a live proxy whose ingress replica died
on that node answers a bare text/plain 500 (Serve's proxy sends no response of its own for a
dead replica, and uvicorn fills in "Internal Server Error"). Both become a JSON 503 with
Retry-After: the client may send the request again, to the nodes still up. The app's own 500s
are JSON, and pass unchanged: a bug stays a 500.

It listens on 127.0.0.1 only, with no stats page, and runs in its own session so that it
outlives `make cluster-up`; `stop_front` ends it by the private directory its config is in.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cluster.haproxy_ingress import HTTP_REQUEST_TIMEOUT_S, haproxy_binary, stop_haproxy

CONFIG_FILE = "front.cfg"
LOG_FILE = "front.log"
HEALTH_PATH = "/-/healthz"  # Serve's proxy answers it itself, without an application
CHECK_INTERVAL_S = 1
FALL_AFTER = 2  # failed checks before a proxy is taken out
RISE_AFTER = 2  # passed checks before it is put back
# A stream may run long; the app's own deadlines (ingress.request_timeout_s) end requests.
STREAM_TIMEOUT_S = 600
NO_PROXY_RETRY_AFTER_S = 5
NO_PROXY_BODY = {"error": {"message": "no ingress node is up; retry", "type": "api_error",
                           "param": None, "code": 503}}
NODE_LOST_BODY = {"error": {"message": "the node serving this request was lost; retry",
                             "type": "service_unavailable", "param": None, "code": 503}}
# Marks the 502 HAProxy makes itself (a proxy gone before answering), so that only it, never a
# server's own 502, is turned into the 503; taken off before the client sees it.
FRONT_ERROR_HEADER = "x-mmserve-front-error"


@dataclass(frozen=True)
class ProxyServer:
    """One node's Serve proxy, as HAProxy names and reaches it."""

    name: str
    port: int


def front_config(port: int, servers: list[ProxyServer]) -> str:
    """HAProxy's config: 127.0.0.1:`port` balanced over the proxies, checked on /-/healthz; a
    failed connection retried on another proxy; with none up, a JSON 503 with Retry-After."""
    body = json.dumps(NO_PROXY_BODY)
    lines = [
        "global",
        "    maxconn 4096",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        f"    timeout http-request {HTTP_REQUEST_TIMEOUT_S}s",
        f"    timeout client {STREAM_TIMEOUT_S}s",
        f"    timeout server {STREAM_TIMEOUT_S}s",
        "    timeout queue 5s",
        # A connection that failed (the request never reached a proxy), or a proxy that closed
        # without a byte of answer (its node died): the client has seen nothing, so another
        # proxy may answer. The dead node's proxy may have passed the request on before it
        # died; then it runs twice, and the client gets one answer.
        "    retries 3",
        "    retry-on conn-failure empty-response",
        "    option redispatch 1",
        "frontend mmserve",
        f"    bind 127.0.0.1:{port}",
        "    default_backend serve_proxies",
        "backend serve_proxies",
        "    balance roundrobin",
        # A request that fails on a reused proxy connection is answered by HAProxy closing the
        # client's connection silently (a client's keep-alive retry, RFC 9112 9.3.1), which
        # most clients report as a dropped connection. A connection per request makes a lost
        # proxy the 503 below instead; on loopback a connect costs little.
        "    http-reuse never",
        f"    option httpchk GET {HEALTH_PATH}",
        "    http-check expect status 200",
        f"    default-server check inter {CHECK_INTERVAL_S}s fall {FALL_AFTER} rise {RISE_AFTER}",
        f"    http-error status 503 content-type application/json string '{body}' "
        f"hdr Retry-After {NO_PROXY_RETRY_AFTER_S}",
        *node_lost_rules(),
        *(f"    server {s.name} 127.0.0.1:{s.port}" for s in servers),
    ]
    return "\n".join(lines) + "\n"


def node_lost_rules() -> list[str]:
    """A proxy lost before it answered (HAProxy's 502) and a dead ingress replica (a proxy's
    text/plain 500): a JSON 503 with Retry-After."""
    body = json.dumps(NODE_LOST_BODY)
    retry = f"hdr Retry-After {NO_PROXY_RETRY_AFTER_S}"
    return [
        f"    http-error status 502 content-type application/json string '{body}' {retry} "
        f"hdr {FRONT_ERROR_HEADER} 1",
        f"    http-after-response set-status 503 if {{ res.hdr({FRONT_ERROR_HEADER}) -m found }}",
        f"    http-after-response del-header {FRONT_ERROR_HEADER}",
        f"    http-response return status 503 content-type application/json string '{body}' "
        f"{retry} if {{ status 500 }} !{{ res.hdr(content-type) -m sub json }}",
    ]


@dataclass
class FrontHAProxy:
    port: int
    servers: list[ProxyServer]
    directory: str | None = None  # private (0700); made at start when not given
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10) -> FrontHAProxy:
        if self.directory is None:
            self.directory = tempfile.mkdtemp(prefix="mmfront-", dir="/tmp")
        config = Path(self.directory) / CONFIG_FILE
        config.write_text(front_config(self.port, self.servers))
        binary = haproxy_binary()
        check = subprocess.run([binary, "-c", "-q", "-f", str(config)], capture_output=True,
                               text=True)
        if check.returncode != 0:
            raise RuntimeError(f"HAProxy refused {config}: {check.stdout}{check.stderr}")
        with open(Path(self.directory) / LOG_FILE, "wb") as log:
            self.process = subprocess.Popen([binary, "-db", "-f", str(config)],
                                            start_new_session=True, stdout=log,
                                            stderr=subprocess.STDOUT)
        self._wait_until_listening(timeout_s)
        return self

    def _wait_until_listening(self, timeout_s: float) -> None:
        from cluster.local_ray import _port_open

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (Path(self.directory) / LOG_FILE).read_text(errors="replace")[-1000:]
                raise RuntimeError(f"HAProxy exited with {self.process.returncode}: {log}")
            if _port_open(self.port):
                return
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"HAProxy did not listen on {self.port} within {timeout_s} s")

    def stop(self) -> None:
        if self.directory:
            stop_front(self.directory)
        if self.process is not None:
            self.process.wait()
            self.process = None


def stop_front(directory: str) -> None:
    """Ends the HAProxy whose config is in `directory`, and removes the directory."""
    import shutil

    stop_haproxy(directory)
    shutil.rmtree(directory, ignore_errors=True)
