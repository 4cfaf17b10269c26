"""The real-cluster definitions run Ray with token auth, keep the dashboard off public
addresses and take every secret (the Ray token, the API keys) from outside the repository; the
API keys reach the ingress's nodes alone, as a file, never a process's environment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from deployments.core.config import load_config
from tests.profiles import REPO, load_profile

AWS = REPO / "cluster" / "aws.yaml"
RAYSERVICE = REPO / "cluster" / "kuberay-rayservice.yaml"
CLOUD_PROFILES = ("gpu", "inferentia", "mixed")


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
    assert "RAY_AUTH_TOKEN=" not in AWS.read_text()


def test_no_aws_process_gets_the_api_keys_in_its_environment():
    assert "MMSERVE_API_KEYS" not in AWS.read_text()


def test_aws_deletes_the_api_keys_on_every_worker_but_the_ingress_nodes():
    config = yaml.safe_load(AWS.read_text())
    delete = "rm -f ~/.mmserve-secrets/api-keys"
    types = config["available_node_types"]
    assert delete in config["worker_setup_commands"]
    assert types["ingress"]["worker_setup_commands"] == config["setup_commands"]
    assert not any(delete in c for c in config["setup_commands"] + config.get(
        "head_setup_commands", []))  # the head keeps the copy synced to new ingress nodes
    others = [name for name, t in types.items() if "worker_setup_commands" in t]
    assert others == ["ingress"]
    guard = [c for c in config["worker_start_ray_commands"] if delete in c]
    assert guard == [f'[ "$RAY_NODE_TYPE_NAME" = ingress ] || {delete}']
    starts = config["worker_start_ray_commands"]
    assert starts.index(guard[0]) < next(i for i, c in enumerate(starts) if "ray start" in c)
    assert types["ingress"]["resources"]["ingress_node"] == 1
    assert not [name for name, t in types.items()
                if name != "ingress" and "ingress_node" in t["resources"]]


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


def kuberay_groups() -> dict[str, dict]:
    cluster = yaml.safe_load(RAYSERVICE.read_text())["spec"]["rayClusterConfig"]
    return {"head": cluster["headGroupSpec"],
            **{g["groupName"]: g for g in cluster["workerGroupSpecs"]}}


def test_no_kuberay_container_gets_the_api_keys_in_its_environment():
    for name, group in kuberay_groups().items():
        for container in group["template"]["spec"]["containers"]:
            names = {e["name"] for e in container.get("env", [])}
            assert "MMSERVE_API_KEYS" not in names, name
            assert not container.get("envFrom"), name


def test_only_the_kuberay_ingress_pods_mount_the_api_keys_secret():
    mounting = {}
    for name, group in kuberay_groups().items():
        volumes = {v["name"]: v for v in group["template"]["spec"].get("volumes", [])
                   if v.get("secret", {}).get("secretName") == "mmserve-api-keys"}
        if volumes:
            mounting[name] = (group, volumes)
    assert list(mounting) == ["ingress"]
    group, volumes = mounting["ingress"]
    (volume,) = volumes.values()
    assert volume["secret"]["items"] == [{"key": "keys", "path": "api-keys"}]
    assert volume["secret"]["defaultMode"] == 0o440
    assert group["template"]["spec"]["securityContext"]["fsGroup"] == 100  # the ray user's
    (container,) = group["template"]["spec"]["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount == {"name": volume["name"], "mountPath": "/home/ray/.mmserve-secrets",
                     "readOnly": True}


def test_only_the_kuberay_ingress_group_advertises_ingress_node():
    advertising = [name for name, group in kuberay_groups().items()
                   if "ingress_node" in group["rayStartParams"].get("resources", "")]
    assert advertising == ["ingress"]


@pytest.mark.parametrize("name", CLOUD_PROFILES)
def test_the_cloud_ingress_reads_the_keys_file_and_runs_where_it_is(name):
    ingress = load_config(load_profile(name)["applications"][0]["args"]).ingress
    assert ingress.api_keys.env is None
    assert ingress.api_keys.file == "~/.mmserve-secrets/api-keys"  # /home/ray/... on KubeRay
    assert ingress.resources == {"ingress_node": 0.001}



def kuberay_containers() -> dict[str, tuple[dict, dict]]:
    """Each group's containers with their pod spec, and the autoscaler's sidecar (whose
    volumes are the head pod's)."""
    cluster = yaml.safe_load(RAYSERVICE.read_text())["spec"]["rayClusterConfig"]
    found = {f"{name}/{c['name']}": (group["template"]["spec"], c)
             for name, group in kuberay_groups().items()
             for c in group["template"]["spec"]["containers"]}
    found["autoscaler"] = (cluster["headGroupSpec"]["template"]["spec"],
                           cluster["autoscalerOptions"])
    return found


@pytest.mark.parametrize("name", sorted(kuberay_containers()))
def test_every_kuberay_container_runs_unprivileged_on_a_read_only_root(name):
    pod, container = kuberay_containers()[name]
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = {m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs}
    assert "/tmp" in writable  # Ray's session dir and sockets


def test_the_kuberay_gcs_keeps_its_state_in_redis_with_a_password_from_a_secret():
    cluster = yaml.safe_load(RAYSERVICE.read_text())["spec"]["rayClusterConfig"]
    options = cluster["gcsFaultToleranceOptions"]
    assert options["redisAddress"]
    assert options["redisPassword"] == {
        "valueFrom": {"secretKeyRef": {"name": "mmserve-redis", "key": "password"}}}
    for name, group in kuberay_groups().items():
        assert "redis-password" not in group["rayStartParams"], name
        for container in group["template"]["spec"]["containers"]:
            names = {e["name"] for e in container.get("env", [])}
            assert not names & {"RAY_REDIS_ADDRESS", "REDIS_PASSWORD"}, name  # KubeRay's


def run_head_start(home: Path, secrets: dict[str, str], command: int = 0) -> list[str]:
    """The head's `ray start` command (or, `command` 1, a worker's) run by bash with `ray` a
    stub printing what it got: its arguments, its GCS reconnect timeout, its RAY_REDIS_ADDRESS."""
    (home / ".mmserve-secrets").mkdir(parents=True)
    for name, text in secrets.items():
        (home / ".mmserve-secrets" / name).write_text(text + "\n")
    stub = home / "venv" / "bin" / "ray"
    stub.parent.mkdir(parents=True)
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@" '
                    '"reconnect=$RAY_gcs_rpc_server_reconnect_timeout_s" '
                    '"address=$RAY_REDIS_ADDRESS"\n')
    stub.chmod(0o700)
    ran = subprocess.run(["bash", "-c", start_commands()[command]], env={"HOME": str(home),
                         "PATH": os.environ["PATH"]}, capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.splitlines()


def test_the_aws_head_keeps_its_gcs_in_the_redis_the_secrets_name(tmp_path):
    printed = run_head_start(tmp_path, {"redis-address": "redis.internal:6379",
                                        "redis-password": "s3cret"})
    assert "--head" in printed
    assert "--redis-password=s3cret" in printed
    assert printed[-1] == "address=redis.internal:6379"
    assert "s3cret" not in AWS.read_text()


def test_the_aws_head_runs_without_redis_when_the_secrets_name_none(tmp_path):
    printed = run_head_start(tmp_path, {})
    assert "--head" in printed
    assert not [arg for arg in printed if arg.startswith("--redis-password")]
    assert printed[-1] == "address="


def test_with_gcs_redis_every_aws_node_outlives_a_head_outage_of_600_s(tmp_path):
    with_redis = {"redis-address": "redis.internal:6379", "redis-password": "s3cret"}
    head = run_head_start(tmp_path / "head", with_redis)
    worker = run_head_start(tmp_path / "worker", with_redis, command=1)
    assert "--head" not in worker
    assert "reconnect=600" in head and "reconnect=600" in worker
    assert "address=" in worker  # a worker reaches the GCS, never Redis


def test_without_gcs_redis_aws_nodes_keep_rays_reconnect_timeout(tmp_path):
    assert "reconnect=" in run_head_start(tmp_path / "head", {})
    assert "reconnect=" in run_head_start(tmp_path / "worker", {}, command=1)
