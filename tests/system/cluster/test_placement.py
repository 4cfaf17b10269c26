"""Each modality's replicas run on the node group meant for it, as Ray and Serve report it."""

from __future__ import annotations

import httpx
import pytest

from cluster.placement import NODE_GROUP_LABEL, node_table, replica_table
from tests.media import b64, png_image, speech_wav, words

pytestmark = pytest.mark.integration

# deployment -> (node group, the resource of that group the replica asked for)
EXPECTED = {
    "TextGenerator": ("gpu-h100", "accelerator_type:H100"),
    "ImageEmbedder": ("inf2", "neuron_cores"),
    "SpeechTranscriber": ("cpu", "cpu_node"),
}


def replica_actors(dashboard: str) -> dict[str, list]:
    from ray.util.state import list_actors

    actors = list_actors(address=dashboard, detail=True,
                         filters=[("state", "=", "ALIVE")], limit=1000)
    by_deployment: dict[str, list] = {}
    for actor in actors:
        if actor.class_name.startswith("ServeReplica:mmserve:"):
            by_deployment.setdefault(actor.class_name.split(":")[-1], []).append(actor)
    return by_deployment


def test_ray_places_each_modality_on_its_node_group(mixed_app):
    from ray.util.state import list_nodes

    nodes = {n.node_id: n for n in list_nodes(address=mixed_app.dashboard, detail=True)}
    actors = replica_actors(mixed_app.dashboard)
    for deployment, (group, resource) in EXPECTED.items():
        assert actors.get(deployment), f"no live replica of {deployment}"
        for actor in actors[deployment]:
            node = nodes[actor.node_id]
            assert node.labels[NODE_GROUP_LABEL] == group, (deployment, node.labels)
            assert resource in actor.required_resources, actor.required_resources
            assert node.resources_total.get(resource, 0) > 0, node.resources_total


def test_serve_reports_the_same_placement(mixed_app):
    nodes = node_table(mixed_app.dashboard)
    every_node = ["head", *(group.name for group, _ in mixed_app.cluster.spec.worker_nodes())]
    assert sorted(n.group for n in nodes.values() if n.alive) == sorted(every_node)
    assert {"cpu", "gpu-h100", "inf2"} < set(every_node)
    replicas = [r for r in replica_table(mixed_app.dashboard, nodes) if r.state == "RUNNING"]
    assert {r.deployment for r in replicas} == {*EXPECTED, "Ingress"}
    for replica in replicas:
        assert replica.node is not None, replica
        if replica.deployment in EXPECTED:  # the ingress reserves no CPU: it may run anywhere
            assert replica.node.group == EXPECTED[replica.deployment][0], replica


def test_one_request_crosses_all_three_node_groups(mixed_app):
    body = {"audio": b64(speech_wav()), "image": b64(png_image()),
            "labels": ["a red circle", "a cat"], "prompt": "Say what you heard and saw.",
            "max_tokens": 12}
    response = httpx.post(f"{mixed_app.url}/v1/pipeline", json=body, timeout=180)
    assert response.status_code == 200, response.text
    result = response.json()
    assert "dog" in words(result["transcript"]["text"])  # cpu group, own Python env
    assert {item["label"] for item in result["labels"]} == {"a red circle", "a cat"}  # inf2
    assert result["usage"]["completion_tokens"] > 0  # gpu-h100 group
