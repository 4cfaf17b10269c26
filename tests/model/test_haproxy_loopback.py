"""The wrapper that keeps HAProxy's stats page and Prometheus exporter (which Ray binds to every
interface) on 127.0.0.1, leaving every other frontend as Ray wrote it."""

from __future__ import annotations

import subprocess

from cluster.haproxy_ingress import haproxy_env, loopback_wrapper

CONFIG = """frontend prometheus
    bind :9101
    mode http
frontend http_frontend
    bind *:8000
frontend local
    bind 127.0.0.1:8001
frontend other
    bind :91011
listen stats
  bind *:8404
  stats enable
"""


def test_stats_and_metrics_are_bound_to_loopback_then_haproxy_runs(tmp_path):
    fake_haproxy = tmp_path / "haproxy"
    fake_haproxy.write_text('#!/bin/sh\necho "ran with $*"\n')
    fake_haproxy.chmod(0o700)
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG)
    wrapper = loopback_wrapper(tmp_path, (8404, 9101), binary=str(fake_haproxy))
    result = subprocess.run([str(wrapper), "-db", "-f", str(config), "-sf", "123"],
                            capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout.strip() == f"ran with -db -f {config} -sf 123"
    binds = [line.strip() for line in config.read_text().splitlines() if "bind" in line]
    assert binds == ["bind 127.0.0.1:9101", "bind *:8000", "bind 127.0.0.1:8001",
                     "bind :91011", "bind 127.0.0.1:8404"]


def test_only_a_loopback_head_runs_haproxy_through_the_wrapper(tmp_path):
    assert "RAY_SERVE_HAPROXY_BINARY_PATH" not in haproxy_env(str(tmp_path), 8404, 9101)
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    env = haproxy_env(str(tmp_path), 8404, 9101, wrapper_dir=str(run_dir))
    assert env["RAY_SERVE_HAPROXY_BINARY_PATH"] == str(run_dir / "haproxy-loopback")
