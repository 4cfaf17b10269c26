"""HAProxy in front of the nodes' Serve proxies: its config as HAProxy itself reads it, and a
real HAProxy balancing over two small HTTP servers standing in for two nodes' proxies."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cluster.front_haproxy import (
    FRONT_ERROR_HEADER,
    HEALTH_PATH,
    FrontHAProxy,
    ProxyServer,
    front_config,
    stop_front,
)
from cluster.haproxy_ingress import haproxy_binary, haproxy_pids
from cluster.local_ray import free_port

SERVERS = [ProxyServer("head", 18001), ProxyServer("cpu-1", 18002)]


def test_it_listens_on_loopback_only_with_no_stats_page():
    config = front_config(18000, SERVERS)
    binds = [line.split()[1] for line in config.splitlines() if line.strip().startswith("bind")]
    assert binds == ["127.0.0.1:18000"]
    assert "stats" not in config


def test_every_nodes_proxy_is_a_server_checked_on_its_own_health_route():
    config = front_config(18000, SERVERS)
    assert "    server head 127.0.0.1:18001" in config
    assert "    server cpu-1 127.0.0.1:18002" in config
    assert f"option httpchk GET {HEALTH_PATH}" in config
    assert "retry-on conn-failure" in config and "option redispatch" in config


def test_haproxy_accepts_the_config(tmp_path):
    path = tmp_path / "front.cfg"
    path.write_text(front_config(free_port(), SERVERS))
    check = subprocess.run([haproxy_binary(), "-c", "-f", str(path)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr


# What a Serve proxy answers when the ingress replica it called died (uvicorn's fill-in), and
# what the app answers for a bug: its own JSON body.
ANSWERS = {"/replica-lost": (500, "text/plain; charset=utf-8", b"Internal Server Error"),
           "/bug": (500, "application/json", b'{"error": {"message": "a bug", "code": 500}}'),
           "/late": (504, "application/json", b'{"error": {"message": "late", "code": 504}}')}


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """HAProxy's health checks close their connection early: nothing to report."""


class StandInProxy:
    """An HTTP server answering like a node's Serve proxy: its health route and one route
    saying which node answered."""

    def __init__(self, name: str) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                if self.path == "/cut":  # the node dies before its proxy answers
                    return
                status, kind, body = ANSWERS.get(self.path, (200, "text/plain", None))
                body = body or (b"success" if self.path == HEALTH_PATH else outer.name.encode())
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.name = name
        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def get(url: str) -> tuple[int, str, dict]:
    """Status, body and headers (their names in lower case, as HAProxy writes them)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode(), lower_keys(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), lower_keys(error.headers)


def lower_keys(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def wait_for(condition, timeout_s: float = 10):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture
def two_proxies():
    proxies = [StandInProxy("head"), StandInProxy("cpu-1")]
    front = FrontHAProxy(free_port(), [ProxyServer(p.name, p.port) for p in proxies]).start()
    yield front, proxies
    front.stop()
    for proxy in proxies:
        proxy.stop()


def test_traffic_flows_through_both_proxies_and_survives_losing_one(two_proxies):
    front, (head, worker) = two_proxies
    wait_for(lambda: get(front.url + "/which")[0] == 200)
    answered = {get(front.url + "/which")[1] for _ in range(6)}
    assert answered == {"head", "cpu-1"}

    head.stop()
    answers = [get(front.url + "/which") for _ in range(20)]
    assert {status for status, _, _ in answers} == {200}
    assert {body for _, body, _ in answers} == {"cpu-1"}


def test_with_no_proxy_up_it_answers_503_json_with_retry_after(two_proxies):
    front, proxies = two_proxies
    for proxy in proxies:
        proxy.stop()
    wait_for(lambda: get(front.url + "/which")[0] == 503)
    status, body, headers = get(front.url + "/which")
    assert status == 503
    assert json.loads(body)["error"]["code"] == 503
    assert int(headers["retry-after"]) >= 1


def test_stop_ends_exactly_its_haproxy(two_proxies):
    front, _ = two_proxies
    directory = front.directory
    assert len(haproxy_pids(directory)) == 1
    stop_front(directory)
    assert haproxy_pids(directory) == []


@pytest.mark.parametrize("path", ["/cut", "/replica-lost"])
def test_a_request_lost_with_its_node_is_a_json_503_with_retry_after(two_proxies, path):
    front, _ = two_proxies
    wait_for(lambda: get(front.url + "/which")[0] == 200)
    status, body, headers = get(front.url + path)
    assert status == 503
    assert json.loads(body)["error"]["type"] == "service_unavailable"
    assert int(headers["retry-after"]) >= 1
    assert FRONT_ERROR_HEADER not in headers


def test_the_apps_own_errors_pass_unchanged(two_proxies):
    front, _ = two_proxies
    wait_for(lambda: get(front.url + "/which")[0] == 200)
    status, body, _ = get(front.url + "/bug")
    assert (status, json.loads(body)["error"]["message"]) == (500, "a bug")
    assert get(front.url + "/late")[0] == 504
