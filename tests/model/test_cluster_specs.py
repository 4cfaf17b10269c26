"""The real-cluster definitions: the cluster-launcher YAML passes the checks `ray up` runs, the
KubeRay RayService reads as the KubeRay autoscaler reads it, and every profile fits them."""

from __future__ import annotations

import copy
import json
from importlib.metadata import version
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from cluster.local import load_spec
from tests.profiles import REPO, built_deployments, capacity, load_profile, replica_demand

AWS = REPO / "cluster" / "aws.yaml"
RAYSERVICE = REPO / "cluster" / "kuberay-rayservice.yaml"
CLOUD_PROFILES = ["gpu", "inferentia", "mixed"]
PLACEMENT_KEYS = ("GPU", "neuron_cores", "cpu_node", "ingress_node")


def aws() -> dict:
    return yaml.safe_load(AWS.read_text())


def rayservice() -> dict:
    return yaml.safe_load(RAYSERVICE.read_text())


def kuberay_node_types() -> dict:
    """The node types the KubeRay autoscaler derives from the RayCluster spec (Ray's code)."""
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )

    ray_cluster = {"metadata": {"name": "mmserve", "namespace": "default"},
                   "spec": rayservice()["spec"]["rayClusterConfig"]}
    return _derive_autoscaling_config_from_ray_cr(ray_cluster)["available_node_types"]


def local_node_types() -> dict:
    spec = load_spec()
    return {g.name: {"resources": {"CPU": g.num_cpus, **g.resources}, "max_workers": g.nodes}
            for g in (spec.head, *spec.workers)}


def placement_resources(resources: dict) -> dict:
    return {k: v for k, v in resources.items() if k in PLACEMENT_KEYS or ":" in k}


def test_aws_config_passes_the_checks_ray_up_runs():
    from ray.autoscaler._private.util import prepare_config, validate_config

    schema_path = Path(__import__("ray.autoscaler").autoscaler.__file__).parent / (
        "ray-schema.json")
    jsonschema.validate(aws(), json.loads(schema_path.read_text()))
    validate_config(prepare_config(copy.deepcopy(aws())))


def test_aws_node_types_advertise_their_hardware():
    types = aws()["available_node_types"]
    assert types[aws()["head_node_type"]]["resources"] == {"CPU": 0}
    for name, node_type in types.items():
        resources = node_type["resources"]
        if resources.get("GPU"):
            accelerator = name.removeprefix("gpu-").upper()
            assert resources[f"accelerator_type:{accelerator}"] == 1, name
        if "inf" in node_type["node_config"]["InstanceType"]:
            assert resources["neuron_cores"] == 2, name
    assert {"gpu-a10g", "gpu-l4", "gpu-a100", "gpu-h100", "inf2", "cpu"} <= set(types)


def test_rayservice_is_a_rayservice_with_a_group_per_aws_node_type():
    service = rayservice()
    assert (service["apiVersion"], service["kind"]) == ("ray.io/v1", "RayService")
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == version("ray")
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert set(groups) == set(aws()["available_node_types"]) - {aws()["head_node_type"]}
    for group in groups.values():
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["template"]["spec"]["containers"][0]["image"]


def test_rayservice_serves_the_mixed_profile():
    serve_config = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve_config)
    assert serve_config == load_profile("mixed")


def test_kuberay_groups_match_the_aws_node_types():
    kuberay = kuberay_node_types()
    for name, node_type in aws()["available_node_types"].items():
        if name == aws()["head_node_type"]:
            continue
        assert placement_resources(kuberay[name]["resources"]) == placement_resources(
            node_type["resources"]), name
        assert kuberay[name]["max_workers"] == node_type["max_workers"], name


def test_local_groups_advertise_what_their_aws_node_types_do():
    types = aws()["available_node_types"]
    for group in load_spec().workers:
        cloud = placement_resources(types[group.name]["resources"])
        cloud.pop("GPU", None)  # no GPU on this machine: profiles ask for num_gpus 0 here
        assert placement_resources(group.resources) == cloud, group.name


CLUSTERS = {"aws": lambda: aws()["available_node_types"], "kuberay": kuberay_node_types}


@pytest.mark.parametrize("cluster", sorted(CLUSTERS))
@pytest.mark.parametrize("profile", CLOUD_PROFILES)
def test_every_replica_fits_and_scales_on_the_cluster(profile, cluster):
    assert_fits(load_profile(profile), CLUSTERS[cluster]())


@pytest.mark.parametrize("profile", CLOUD_PROFILES)
def test_the_cloud_ingress_lands_only_on_the_nodes_holding_the_keys(profile):
    """Only the ingress node type advertises ingress_node; the built ingress asks for it."""
    ingress = built_deployments(load_profile(profile))["Ingress"]
    assert ingress.ray_actor_options["resources"] == {"ingress_node": 0.001}
    for node_types in (aws()["available_node_types"], kuberay_node_types()):
        holding = [name for name, node in node_types.items()
                   if node["resources"].get("ingress_node")]
        assert holding == ["ingress"]


def test_mixed_local_fits_the_local_cluster():
    assert_fits(load_profile("mixed-local"), local_node_types())


def test_a_gpu_profile_does_not_fit_the_local_cluster():
    with pytest.raises(AssertionError, match="no node type"):
        assert_fits(load_profile("gpu"), local_node_types())


def assert_fits(profile: dict, node_types: dict) -> None:
    """Every replica has a node type with what it asks for (heads have no CPU for replicas);
    and the cluster at its largest holds each deployment's max_replicas."""
    for name, deployment in built_deployments(profile).items():
        demand = replica_demand(deployment.ray_actor_options)
        homes = [t for t, node in node_types.items()
                 if all(node["resources"].get(r, 0) >= v for r, v in demand.items())]
        assert homes, f"no node type for {name}: {demand}"
        wanted = deployment._deployment_config.autoscaling_config.max_replicas
        assert capacity(demand, node_types) >= wanted, (name, demand)
