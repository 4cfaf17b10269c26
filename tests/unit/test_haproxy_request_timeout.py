"""HAProxy's `timeout http-request`, which Ray's config leaves out, added by the wrapper Ray runs
in place of HAProxy: a client gets HTTP_REQUEST_TIMEOUT_S to send its request's headers."""

from __future__ import annotations

import subprocess

from cluster.haproxy_ingress import HTTP_REQUEST_TIMEOUT_S, loopback_wrapper

RAY_CONFIG = """global
    maxconn 20000
defaults
    mode http
    timeout connect 5s
    timeout client 3600s
    timeout http-keep-alive 5s
frontend http_frontend
    bind *:8000
"""


def run_wrapper(tmp_path, config_text: str) -> str:
    fake_haproxy = tmp_path / "haproxy"
    fake_haproxy.write_text('#!/bin/sh\nexit 0\n')
    fake_haproxy.chmod(0o700)
    config = tmp_path / "haproxy.cfg"
    config.write_text(config_text)
    wrapper = loopback_wrapper(tmp_path, (8404, 9101), binary=str(fake_haproxy))
    for _ in range(2):  # Ray runs it again on every reload, over the config it rewrote
        subprocess.run([str(wrapper), "-db", "-f", str(config)], check=True, timeout=30)
    return config.read_text()


def test_the_wrapper_adds_one_timeout_http_request_to_the_defaults(tmp_path):
    lines = run_wrapper(tmp_path, RAY_CONFIG).splitlines()
    defaults = lines.index("defaults")
    assert lines[defaults + 1] == f"    timeout http-request {HTTP_REQUEST_TIMEOUT_S}s"
    assert sum("timeout http-request" in line for line in lines) == 1
    assert "    bind *:8000" in lines  # the API's own bind is left as Ray wrote it


def test_a_timeout_ray_was_asked_for_is_kept(tmp_path):
    written = RAY_CONFIG.replace("    mode http\n", "    mode http\n    timeout http-request 3s\n")
    assert run_wrapper(tmp_path, written) == written
