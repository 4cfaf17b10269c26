"""The local cluster's parts that need no running Ray: node groups, commands, ports, cleanup."""

from __future__ import annotations

import json
import os

from cluster.local import _is_our_node, _worker_port_ranges, load_spec
from cluster.local_ray import LocalRay, LocalRayWorker


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_head_takes_no_replica_and_each_group_is_a_node():
    spec = load_spec()
    assert spec.head.num_cpus == 0
    assert [g.name for g in spec.workers] == ["gpu-h100", "inf2", "cpu"]
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
