"""`make serve` as a user runs it: nothing it starts accepts a caller without credentials from
beyond loopback, the API wants its key (and the OpenAI client sends it), and a stop signal ends
every process it started, with nothing left listening.

Each test starts the real app on its own ports and temp dir (the defaults, 6379/8265/8080/8000
and /tmp/ray-mmserve, stay free for a user's own `make serve`). Probes go to 127.0.0.1 only.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from cluster.local_ray import free_ports, ray_token_path
from tests.conftest import REPO
from tests.sockets import (
    Listener,
    alive,
    descendants,
    grpc_accepts,
    grpc_answers,
    http_accepts,
    listeners,
    listening_ports,
)

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 900
STOP_TIMEOUT_S = 60  # what issue 11 promises for a stop signal
GCS_METHOD = "/ray.rpc.NodeInfoGcsService/GetAllNodeInfo"


@dataclass
class RunningApp:
    """One `make serve` (or `python -m cluster.launch`) and what it started."""

    process: subprocess.Popen
    ports: dict[str, int]
    temp_dir: str
    log: Path
    api_key: str | None
    pids: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def listeners(self) -> list[Listener]:
        """What it listens on now; processes started since (HAProxy starts a new one on each
        reload) join those it must stop."""
        self.pids |= descendants(self.process.pid)
        return listeners(alive(self.pids))


def launcher_args(ports: dict[str, int], temp_dir: str) -> list[str]:
    return ["--ray-port", str(ports["gcs"]), "--dashboard-port", str(ports["dashboard"]),
            "--metrics-port", str(ports["metrics"]), "--http-port", str(ports["http"]),
            "--temp-dir", temp_dir]


@pytest.fixture
def started(model_dir: str, tmp_path: Path) -> Iterator:
    """Starts the app by `command(args)`; afterwards kills whatever of it a test left behind."""
    apps: list[RunningApp] = []

    def start(command, api_key: str | None = None) -> RunningApp:
        ports = free_ports(("gcs", "dashboard", "metrics", "http"))
        temp_dir = tempfile.mkdtemp(prefix="mms-", dir="/tmp")  # short: unix socket paths
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("RAY_") and k != "MMSERVE_API_KEYS"}
        env.update(PYTHONPATH=str(REPO), MMSERVE_MODEL_DIR=model_dir)
        if api_key:
            env["MMSERVE_API_KEYS"] = f"another-key,{api_key}"
        log = tmp_path / f"serve-{len(apps)}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(command(launcher_args(ports, temp_dir)), cwd=REPO,
                                       env=env, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        app = RunningApp(process, ports, temp_dir, log, api_key)
        apps.append(app)
        _wait_until_serving(app)
        app.pids = descendants(process.pid)
        return app

    yield start
    for app in apps:
        _end(app.pids | descendants(app.process.pid), app.process.pid)
        shutil.rmtree(app.temp_dir, ignore_errors=True)


def _end(pids: set[int], group: int | None) -> None:
    """After a failed test: a stop signal to the group it was started in, then SIGKILL."""
    if group is not None:
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in alive(pids):
        os.kill(pid, signal.SIGKILL)


def make_serve(args: list[str]) -> list[str]:
    return ["make", "-s", "serve", f"SERVE_ARGS={' '.join(args)}"]


def launch(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "cluster.launch", *args]


def _wait_until_serving(app: RunningApp) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert app.process.poll() is None, f"it exited early:\n{app.output()[-3000:]}"
        try:
            if httpx.get(f"{app.url}/v1/models", headers=app.headers(),
                         timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise TimeoutError(f"not serving within {START_TIMEOUT_S} s:\n{app.output()[-3000:]}")


def assert_stops_cleanly(app: RunningApp, listening: list[Listener]) -> None:
    """Within STOP_TIMEOUT_S every process it started is gone and none of its ports listens."""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while alive(app.pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = alive(app.pids)
    assert not left, f"still running {STOP_TIMEOUT_S} s after the signal: {sorted(left)}"
    still_open = {listener.port for listener in listening} & listening_ports()
    assert not still_open, f"still listening: {sorted(still_open)}"
    assert "Ray head stopped." in app.output()


def test_make_serve_shows_nothing_without_credentials_and_stops_on_sigterm_to_its_group(
        started):
    key = secrets.token_hex(16)
    app = started(make_serve, api_key=key)

    assert_api_wants_a_key(app)
    assert_openai_client_sends_the_key(app)
    listening = _with_haproxy_listening(app)  # the default ingress of `make serve`
    haproxy = [listener for listener in listening if "haproxy" in listener.command]
    assert all(listener.loopback for listener in haproxy), haproxy
    ray_servers = [listener for listener in listening if listener not in haproxy]
    assert_ray_refuses_callers_without_the_token(app, ray_servers)
    assert_nothing_beyond_loopback_accepts_an_anonymous_call(listening)

    os.killpg(app.process.pid, signal.SIGTERM)  # what a supervisor does
    assert_stops_cleanly(app, listening)


def test_sigint_to_the_launcher_stops_everything_it_started_even_signalled_again(started):
    """With Serve's Python proxy as the ingress instead of the default HAProxy, on the profile
    without vLLM (the launcher's stop does not depend on the engine; it starts sooner)."""
    app = started(lambda args: launch([*args, "--ingress", "proxy",
                                       "--profile", "cpu-transformers"]))
    assert httpx.get(f"{app.url}/v1/models", timeout=30).status_code == 200  # loopback: no key
    listening = app.listeners()
    assert not any("haproxy" in listener.command for listener in listening), listening
    assert_nothing_beyond_loopback_accepts_an_anonymous_call(listening)

    app.process.send_signal(signal.SIGINT)
    for repeated in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # cannot cut cleanup short
        time.sleep(1)
        app.process.send_signal(repeated)
    assert_stops_cleanly(app, listening)


def _with_haproxy_listening(app: RunningApp, timeout_s: float = 60) -> list[Listener]:
    """What it listens on once HAProxy's API, stats and metrics frontends are all up: Ray
    reloads HAProxy (a new process takes the sockets over) as the replicas come and go."""
    deadline = time.monotonic() + timeout_s
    while True:
        listening = app.listeners()
        if sum("haproxy" in listener.command for listener in listening) >= 3:
            return listening
        assert time.monotonic() < deadline, f"HAProxy is not listening: {listening}"
        time.sleep(1)


def assert_api_wants_a_key(app: RunningApp) -> None:
    for path in ("/v1/models", "/openapi.json"):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": app.api_key}):
            response = httpx.get(f"{app.url}{path}", headers=headers, timeout=30)
            assert response.status_code == 401, (path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["type"] == "authentication_error"
    for path in ("/docs", "/redoc"):  # no pages that load scripts from a CDN
        assert httpx.get(f"{app.url}{path}", headers=app.headers(), timeout=30).status_code == 404
    assert httpx.get(f"{app.url}/healthz", timeout=30).status_code == 200  # probes need none


def assert_openai_client_sends_the_key(app: RunningApp) -> None:
    from openai import AuthenticationError, OpenAI

    client = OpenAI(base_url=f"{app.url}/v1", api_key=app.api_key, max_retries=0)
    assert "smollm2-135m-instruct" in {model.id for model in client.models.list()}
    embedding = client.embeddings.create(model="clip-vit-b-32", input=["a red square"])
    assert len(embedding.data) == 1 and len(embedding.data[0].embedding) > 0
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=f"{app.url}/v1", api_key="not-a-key", max_retries=0).models.list()


def assert_ray_refuses_callers_without_the_token(app: RunningApp,
                                                 listening: list[Listener]) -> None:
    """Every Ray gRPC server it runs, loopback or not, wants the token: the GCS answers with it
    (so the probe reaches a real server) and refuses without it, as does every other port."""
    token = ray_token_path().read_text().strip()
    with_token = grpc_answers(app.ports["gcs"], (("authorization", f"Bearer {token}"),))
    assert with_token == {GCS_METHOD: "OK"}
    assert grpc_answers(app.ports["gcs"]) == {GCS_METHOD: "UNAUTHENTICATED"}
    served = {listener.port: grpc_answers(listener.port) for listener in listening}
    assert sum(bool(answers) for answers in served.values()) >= 4  # GCS, raylet, workers...
    accepted = {port: answers for port, answers in served.items()
                if any(code != "UNAUTHENTICATED" for code in answers.values())}
    assert not accepted, f"Ray gRPC calls without the token accepted: {accepted}"


def assert_nothing_beyond_loopback_accepts_an_anonymous_call(listening: list[Listener]) -> None:
    exposed = [listener for listener in listening if not listener.loopback]
    accepted = {str(listener): http_accepts(listener.port) or grpc_accepts(listener.port)
                for listener in exposed}
    accepted = {where: what for where, what in accepted.items() if what}
    assert not accepted, f"reachable beyond loopback without credentials: {accepted}"


DIES_WITH_PARENT = """
import sys, time
from cluster.local_ray import LocalRay
head = LocalRay(num_cpus=1, temp_dir=sys.argv[1], die_with_parent=True).start()
print(head.process.pid, flush=True)
time.sleep(600)
"""


def test_the_head_goes_when_the_launcher_is_killed_outright(tmp_path):
    """The backstop for a launcher that gets no chance to clean up (SIGKILL, OOM killer)."""
    temp_dir = tempfile.mkdtemp(prefix="mmray-", dir="/tmp")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    launcher = subprocess.Popen([sys.executable, "-c", DIES_WITH_PARENT, temp_dir], env=env,
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
    pids: set[int] = set()
    head = None
    try:
        head = int(launcher.stdout.readline())
        pids = descendants(head)
        assert len(pids) > 3  # ray start, GCS, raylet, dashboard...
        listening = listeners(pids)
        launcher.kill()
        launcher.wait()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while alive(pids) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not alive(pids)
        assert not {listener.port for listener in listening} & listening_ports()
    finally:
        launcher.kill()
        _end(pids, head)
        shutil.rmtree(temp_dir, ignore_errors=True)
