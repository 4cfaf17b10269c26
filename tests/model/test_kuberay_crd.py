"""cluster/kuberay-rayservice.yaml is a RayService the Kubernetes API server accepts: it passes
the openAPIV3Schema of KubeRay's RayService CRD (tests/data/kuberay/, or $MMSERVE_KUBERAY_CRD),
checked as `kubectl apply` checks it (tests/kubernetes_schema.py). In the main venv's tier
because the unit venv has no jsonschema."""

from __future__ import annotations

import copy
import gzip
import os
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.kubernetes_schema import CrdSchema, crd_schema, values_at
from tests.profiles import REPO

RAYSERVICE = REPO / "cluster" / "kuberay-rayservice.yaml"
CRD = Path(os.environ.get("MMSERVE_KUBERAY_CRD")
           or REPO / "tests" / "data" / "kuberay" / "ray.io_rayservices.yaml.gz")


@pytest.fixture(scope="module")
def schema() -> CrdSchema:
    text = gzip.decompress(CRD.read_bytes()) if CRD.suffix == ".gz" else CRD.read_bytes()
    return crd_schema(yaml.safe_load(text), "v1")


def rayservice() -> dict:
    return yaml.safe_load(RAYSERVICE.read_text())


def errors(schema: CrdSchema, manifest: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(schema.schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(manifest)]


def test_the_rayservice_passes_the_crds_schema(schema):
    assert errors(schema, rayservice()) == []


def test_no_cel_rule_of_the_crd_applies_to_a_new_rayservice(schema):
    """The CEL rules are not evaluated here: each is a transition rule (on an update) or sits
    on a field the manifest leaves unset."""
    assert schema.cel_rules
    for path, rule in schema.cel_rules:
        assert "oldSelf" in rule or not values_at(rayservice(), path), (path, rule)


def test_the_schema_rejects_what_the_api_server_rejects(schema):
    misspelled = rayservice()
    misspelled["spec"]["rayClusterConfig"]["gcsFaultTolerance"] = {"redisAddress": "r:6379"}
    assert errors(schema, misspelled)
    wrong_type = rayservice()
    wrong_type["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["replicas"] = "one"
    assert errors(schema, wrong_type)
    no_image = rayservice()
    del no_image["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"][
        "containers"][0]["name"]
    assert errors(schema, no_image)


@pytest.mark.parametrize("cpu, accepted", [("4", True), (4, True), ("500m", True),
                                           (["4"], False), ("four", False)])
def test_int_or_string_quantities_take_either_and_nothing_else(schema, cpu, accepted):
    manifest = copy.deepcopy(rayservice())
    head = manifest["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    head["containers"][0]["resources"]["limits"]["cpu"] = cpu
    assert (errors(schema, manifest) == []) is accepted
