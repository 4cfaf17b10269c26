"""The local cluster's parts that need no running Ray: node groups, commands, ports, cleanup."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import yaml

from cluster.gcs_redis import (
    DEFAULT_RECONNECT_TIMEOUT_S,
    LOCAL,
    RECONNECT_TIMEOUT_ENV,
    GcsRedis,
    GcsRedisSpec,
    head_env,
    parse_gcs_redis,
)
from cluster.gcs_redis import stop_from_state as stop_gcs_redis
from cluster.local import (
    REPO,
    ClusterSpec,
    IngressSpec,
    LocalCluster,
    NodeGroup,
    _is_our_node,
    _worker_port_ranges,
    for_this_cluster,
    ingress_summary,
    load_spec,
    node_name,
    proxy_ports,
)
from cluster.local_ray import LocalRay, LocalRayWorker


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_head_takes_no_replica_and_each_group_is_a_node():
    spec = load_spec()
    assert spec.head.num_cpus == 0
    assert [g.name for g in spec.workers] == ["gpu-h100", "inf2", "cpu"]
    assert spec.head.nodes == 1
    assert spec.workers[1].resources["neuron_cores"] == 2


def test_a_worker_joins_the_head_with_its_own_ports_and_resources(tmp_path):
    head = LocalRay(num_cpus=0, temp_dir=str(tmp_path / "head"))
    worker = LocalRayWorker(num_cpus=1, head_address=head.address,
                            temp_dir=str(tmp_path / "worker"), node_group="inf2",
                            resources={"neuron_cores": 2}, worker_ports=(21000, 21199))
    command = worker._command()
    assert command[1:5] == ["start", "--address", head.address, "--block"]
    assert "--head" not in command and "--dashboard-port" not in command
    assert json.loads(flag(command, "--resources")) == {"neuron_cores": 2}
    assert flag(command, "--temp-dir") == str(tmp_path / "worker")
    assert (flag(command, "--min-worker-port"), flag(command, "--max-worker-port")) == (
        "21000", "21199")
    own = {int(flag(command, f)) for f in ("--node-manager-port", "--object-manager-port",
                                            "--metrics-export-port", "--runtime-env-agent-port")}
    assert len(own) == 4 and not own & set(head.ports.values())


def test_worker_port_ranges_are_disjoint_and_below_the_ephemeral_range():
    ranges = _worker_port_ranges(45678, 4)
    ports = [set(range(low, high + 1)) for low, high in ranges]
    assert all(not a & b for i, a in enumerate(ports) for b in ports[i + 1:])
    assert max(high for _, high in ranges) < 32768


def test_down_never_stops_a_process_it_did_not_start():
    assert not _is_our_node(os.getpid(), "/tmp/mmray-not-this")
    assert not _is_our_node(2 ** 22 + 1, "/tmp/mmray-not-this")


def test_a_group_may_have_several_nodes_each_named_apart(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        "ingress: {port: 9000, proxy_port: 9001}\n"
        "head: {num_cpus: 0}\n"
        "workers:\n"
        "  - {name: gpu, num_cpus: 1, resources: {'accelerator_type:H100': 1}}\n"
        "  - {name: cpu, num_cpus: 1, resources: {cpu_node: 1}, nodes: 2}\n")
    spec = load_spec(spec_file)
    nodes = spec.worker_nodes()
    assert [(group.name, index) for group, index in nodes] == [("gpu", 1), ("cpu", 1), ("cpu", 2)]
    assert [node_name(group, index) for group, index in nodes] == ["gpu", "cpu-1", "cpu-2"]
    assert nodes[1][0].resources == nodes[2][0].resources == {"cpu_node": 1}
    assert spec.ingress == IngressSpec(port=9000, proxy_port=9001)


def test_a_group_of_no_nodes_is_refused(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("workers:\n  - {name: cpu, num_cpus: 1, nodes: 0}\n")
    with pytest.raises(ValueError, match="'cpu' needs at least 1 node"):
        load_spec(spec_file)


def test_the_shipped_spec_gives_the_vision_and_audio_groups_two_nodes():
    spec = load_spec()
    assert {g.name: g.nodes for g in spec.workers} == {"gpu-h100": 1, "inf2": 2, "cpu": 2}
    assert spec.ingress == IngressSpec(port=8000, proxy_port=8001)


def test_every_node_gets_its_own_proxy_port():
    assert proxy_ports(4, 8001) == [8001, 8002, 8003, 8004]
    free = proxy_ports(4, None)
    assert len(set(free)) == 4


def test_each_worker_node_binds_its_proxy_on_its_own_port_and_never_shares_one():
    cluster = LocalCluster(load_spec())
    assert len(cluster.proxy_ports) == len(set(cluster.proxy_ports)) == 6
    assert cluster.env["SERVE_SOCKET_REUSE_PORT_ENABLED"] == "0"
    assert [s.name for s in cluster.proxy_servers()] == [
        "head", "gpu-h100", "inf2-1", "inf2-2", "cpu-1", "cpu-2"]
    standard = LocalCluster(load_spec(), ingress=IngressSpec(port=8000, proxy_port=8001))
    assert standard.ingress_url == "http://127.0.0.1:8000"
    assert standard.proxy_ports == [8001, 8002, 8003, 8004, 8005, 8006]
    assert standard.head_proxy_port == 8001


def test_deploy_points_the_profile_at_the_heads_proxy_port():
    state = {"ingress": {"proxies": [{"node": "head", "port": 18001},
                                     {"node": "cpu-1", "port": 18002}]}}
    profile = {"proxy_location": "EveryNode", "http_options": {"host": "127.0.0.1", "port": 8001},
               "applications": []}
    deployed = for_this_cluster(profile, state)
    assert deployed["http_options"] == {"host": "127.0.0.1", "port": 18001}
    assert profile["http_options"]["port"] == 8001


def test_the_mixed_local_profile_runs_a_proxy_on_every_node_behind_the_ingress():
    profile = yaml.safe_load((REPO / "cluster/profiles/mixed-local.yaml").read_text())
    assert profile["proxy_location"] == "EveryNode"
    assert profile["http_options"] == {"host": "127.0.0.1",
                                       "port": load_spec().ingress.proxy_port}


def test_cluster_up_says_where_to_send_traffic_and_how_it_fails_over():
    state = {"ingress": {"url": "http://127.0.0.1:8000", "proxies": [
        {"node": "head", "port": 8001}, {"node": "cpu-1", "port": 8002}]}}
    summary = ingress_summary(state)
    assert "http://127.0.0.1:8000" in summary
    assert "head :8001, cpu-1 :8002" in summary
    assert "/-/healthz" in summary and "another proxy" in summary


def test_status_shows_each_ingress_node_and_whether_its_proxy_is_up():
    from cluster.placement import format_proxies

    table = format_proxies("http://127.0.0.1:8000", [("head", 8001, True),
                                                     ("cpu-1", 8002, False)])
    lines = table.splitlines()
    assert "http://127.0.0.1:8000" in lines[0]
    assert lines[2].split() == ["head", "127.0.0.1:8001", "UP"]
    assert lines[3].split() == ["cpu-1", "127.0.0.1:8002", "DOWN"]


def test_gcs_fault_tolerance_is_off_unless_the_spec_asks_for_it(tmp_path):
    assert load_spec().gcs_redis is None
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({"head": {"num_cpus": 0}, "workers": [],
                                         "gcs_redis": "local"}))
    assert load_spec(spec_file).gcs_redis == GcsRedisSpec(LOCAL, DEFAULT_RECONNECT_TIMEOUT_S)


def test_gcs_redis_takes_an_address_and_a_reconnect_timeout():
    assert parse_gcs_redis({"address": "redis.internal:6380", "reconnect_timeout_s": 120}) == (
        GcsRedisSpec("redis.internal:6380", 120))
    for wrong in ({"address": "redis.internal"}, {"reconnect_timeout_s": 0},
                  {"adress": "local"}):
        with pytest.raises(ValueError):
            parse_gcs_redis(wrong)


def test_with_gcs_redis_every_node_outlives_an_outage_of_the_given_length():
    spec = ClusterSpec(NodeGroup("head", 0), (NodeGroup("cpu", 1, nodes=2),),
                       gcs_redis=GcsRedisSpec(reconnect_timeout_s=90))
    assert LocalCluster(spec).env[RECONNECT_TIMEOUT_ENV] == "90"
    plain = ClusterSpec(NodeGroup("head", 0), (NodeGroup("cpu", 1),))
    assert RECONNECT_TIMEOUT_ENV not in LocalCluster(plain).env


def test_the_head_finds_its_redis_in_its_environment_and_the_password_in_a_file(tmp_path):
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    head = LocalRay(num_cpus=0, temp_dir=str(tmp_path / "head"),
                    env=head_env("127.0.0.1:7000", "mmserve-abc"),
                    redis_password_file=str(password))
    assert flag(head._command(), "--redis-password") == "s3cret"
    assert head.env["RAY_REDIS_ADDRESS"] == "127.0.0.1:7000"
    assert head.env["RAY_external_storage_namespace"] == "mmserve-abc"
    assert "--redis-password" not in LocalRay(num_cpus=0)._command()


def test_a_local_gcs_redis_listens_on_loopback_and_asks_for_its_password(tmp_path):
    redis = GcsRedis.start(GcsRedisSpec())
    try:
        host, port = redis.address.split(":")
        assert host == "127.0.0.1"
        assert redis.password_file.stat().st_mode & 0o077 == 0
        with socket.create_connection((host, int(port)), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            assert conn.recv(64).startswith(b"-NOAUTH")
            password = redis.password_file.read_text().strip()
            conn.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            replies = b""
            while replies.count(b"\r\n") < 2:
                replies += conn.recv(64)
            assert replies == b"+OK\r\n+PONG\r\n"
        state = redis.state()
    finally:
        redis.stop()
    assert not stop_gcs_redis(state)  # already stopped: nothing of someone else's is killed


def test_down_stops_the_local_gcs_redis_it_started(tmp_path):
    redis = GcsRedis.start(GcsRedisSpec())
    state = redis.state()
    assert stop_gcs_redis(state)
    redis.server.process.wait(timeout=5)
    assert not Path(state["folder"]).exists()
