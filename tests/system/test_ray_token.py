"""Ray token auth for the clusters this project starts: the token file, and what every process
of a cluster (node or driver) is given to use it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from cluster.local_ray import (
    LOOPBACK_ONLY_ENV,
    LocalRay,
    LocalRayWorker,
    ensure_ray_token,
    ray_token_path,
    token_auth_env,
)
from tests.profiles import REPO


def test_the_token_lives_in_mmserve_home(monkeypatch, tmp_path):
    monkeypatch.setenv("MMSERVE_HOME", str(tmp_path))
    assert ray_token_path() == tmp_path / "ray-auth-token"


def test_the_token_is_generated_once_readable_by_its_owner_only(tmp_path):
    path = ensure_ray_token(tmp_path / "home" / "ray-auth-token")
    token = path.read_text()
    assert len(token) == 64 and int(token, 16) >= 0  # 256 random bits, hex
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_ray_token(path).read_text() == token
    assert [p.name for p in path.parent.iterdir()] == ["ray-auth-token"]  # no temp file left


def test_a_token_file_others_could_read_is_made_private(tmp_path):
    path = tmp_path / "ray-auth-token"
    path.write_text("a" * 64)
    path.chmod(0o644)
    ensure_ray_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "a" * 64


def test_processes_racing_to_create_the_token_all_get_the_same_one(tmp_path):
    path = tmp_path / "ray-auth-token"
    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda _: ensure_ray_token(path).read_text(), range(32)))
    assert len(tokens) == 1


def test_every_process_of_a_cluster_gets_token_auth_through_the_token_path(
        monkeypatch, tmp_path):
    monkeypatch.setenv("MMSERVE_HOME", str(tmp_path))
    env = LocalRay().driver_env()
    assert env == token_auth_env(tmp_path / "ray-auth-token")
    assert env == {"RAY_AUTH_MODE": "token",
                   "RAY_AUTH_TOKEN_PATH": str(tmp_path / "ray-auth-token")}
    assert LocalRay(token_auth=False).driver_env() == {"RAY_AUTH_MODE": "disabled"}


def test_a_loopback_only_head_tells_its_drivers_to_stay_on_loopback(monkeypatch, tmp_path):
    monkeypatch.setenv("MMSERVE_HOME", str(tmp_path))
    assert LOOPBACK_ONLY_ENV.items() <= LocalRay(loopback_only=True).driver_env().items()


def test_no_worker_node_joins_a_loopback_only_head():
    worker = LocalRayWorker(head_address="127.0.0.1:6379", loopback_only=True)
    with pytest.raises(ValueError, match="loopback-only head takes no worker nodes"):
        worker._command()


AUTHORIZED_PROBE = """
import sys
from ray._raylet import AuthenticationMode, AuthenticationTokenLoader, get_authentication_mode
from cluster.local_ray import authorize_this_process
from pathlib import Path

assert get_authentication_mode() == AuthenticationMode.DISABLED  # read, and cached, by Ray
authorize_this_process(Path(sys.argv[1]))
print(get_authentication_mode() == AuthenticationMode.TOKEN,
      AuthenticationTokenLoader.instance().get_raw_token() == Path(sys.argv[1]).read_text())
"""


def test_a_process_that_already_read_ray_s_auth_mode_is_switched_to_the_token(tmp_path):
    """In a process of its own: the switch is for good, as it is for a driver."""
    path = ensure_ray_token(tmp_path / "ray-auth-token")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run([sys.executable, "-c", AUTHORIZED_PROBE, str(path)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["True", "True"], result.stderr[-2000:]
