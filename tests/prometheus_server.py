"""A real Prometheus (Debian's, installed by `make system-deps`) for tests: on a free loopback
port, its config and data in a temp dir, scraping the given targets every second or two,
stopped by its own PID, never by name."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cluster.dashboard_png import prometheus_api


class PrometheusServer:
    """prometheus on a free loopback port, scraping `targets` (host:port) every scrape_s."""

    def __init__(self, folder: Path, targets: list[str], scrape_s: float = 1) -> None:
        self.folder, self.targets, self.scrape_s, self.process = folder, targets, scrape_s, None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        # YAML is a superset of JSON: no YAML writer needed.
        return json.dumps({
            "global": {"scrape_interval": f"{self.scrape_s}s",
                       "scrape_timeout": f"{self.scrape_s}s",
                       "evaluation_interval": f"{self.scrape_s}s"},
            "scrape_configs": [{"job_name": "ray", "static_configs": [
                {"targets": self.targets}]}],
        }, indent=1)

    def start(self) -> PrometheusServer:
        (self.folder / "prometheus.yml").write_text(self.config())
        log = self.folder / "prometheus.log"
        self.process = subprocess.Popen(
            [shutil.which("prometheus") or "prometheus",
             f"--config.file={self.folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=1d", "--log.level=warn"],
            stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=self.folder)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"prometheus did not start: {log.read_text(errors='replace')}")

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """/api/v1/query: the instant vector's samples (an error raises with Prometheus's
        own message)."""
        params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
        return self._api("query", params)["result"]

    def query_range(self, expr: str, start: float, end: float,
                    step: float) -> list[dict[str, Any]]:
        return self._api("query_range", {"query": expr, "start": f"{start:.3f}",
                                         "end": f"{end:.3f}", "step": f"{step}"})["result"]

    def _api(self, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
        return prometheus_api(self.url, endpoint, params)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

