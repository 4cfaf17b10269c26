"""The real-cluster definitions run Ray with token auth, keep the dashboard off public
addresses and take every secret (the Ray token, the API keys) from outside the repository."""

from __future__ import annotations

import yaml

from tests.profiles import REPO

AWS = REPO / "cluster" / "aws.yaml"
RAYSERVICE = REPO / "cluster" / "kuberay-rayservice.yaml"


def start_commands() -> list[str]:
    config = yaml.safe_load(AWS.read_text())
    return [command for command in (config["head_start_ray_commands"]
                                    + config["worker_start_ray_commands"])
            if "ray start" in command]


def test_every_aws_node_runs_ray_with_the_token_from_a_synced_secret_file():
    config = yaml.safe_load(AWS.read_text())
    assert config["file_mounts"]["~/.mmserve-secrets"] == "~/.mmserve-secrets"
    commands = start_commands()
    assert len(commands) == 2
    for command in commands:
        assert "RAY_AUTH_MODE=token" in command
        assert "RAY_AUTH_TOKEN_PATH=$HOME/.mmserve-secrets/ray-auth-token" in command
        assert "MMSERVE_API_KEYS=$(paste -sd, ~/.mmserve-secrets/api-keys)" in command
    assert "RAY_AUTH_TOKEN=" not in AWS.read_text()


def test_the_aws_dashboard_listens_on_the_heads_loopback_only():
    head = start_commands()[0]
    assert "--head" in head and "--dashboard-host=127.0.0.1" in head
    assert not any("--dashboard-host=0.0.0.0" in command for command in start_commands())


def test_kuberay_turns_token_auth_on_and_keeps_the_head_service_internal():
    cluster = yaml.safe_load(RAYSERVICE.read_text())["spec"]["rayClusterConfig"]
    assert cluster["authOptions"] == {"mode": "token"}
    assert cluster["headGroupSpec"]["serviceType"] == "ClusterIP"
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        for container in group["template"]["spec"]["containers"]:
            names = {e["name"] for e in container.get("env", [])}
            assert not names & {"RAY_AUTH_TOKEN", "RAY_AUTH_MODE"}  # KubeRay sets both


def test_every_kuberay_container_reads_the_api_keys_from_a_secret():
    cluster = yaml.safe_load(RAYSERVICE.read_text())["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            keys = {e["name"]: e for e in container.get("env", [])}["MMSERVE_API_KEYS"]
            assert "value" not in keys
            assert keys["valueFrom"]["secretKeyRef"] == {"name": "mmserve-api-keys",
                                                         "key": "keys"}
