"""Groups the cluster cannot place: found from Serve's details and the live nodes, answered 503
with Retry-After and a JSON body naming the group and the missing resource."""

from __future__ import annotations

import asyncio
import json

from serve_app.group_placement import (
    UNPLACEABLE_RETRY_AFTER_S,
    PlacementWatch,
    unplaceable_groups,
)
from serve_app.http_errors import error_response

GROUPS = {"text": "TextGenerator", "audio": "SpeechTranscriber"}
NODES = [{"CPU": 1.0, "accelerator_type:H100": 1.0}, {"CPU": 1.0, "cpu_node": 1.0}]


def deployment(options: dict, *states: str) -> dict:
    return {"deployment_config": {"ray_actor_options": options},
            "replicas": [{"state": state} for state in states]}


ON_A10G = deployment({"num_cpus": 0.5, "accelerator_type": "A10G"}, "STARTING")
TEXT = deployment({"num_cpus": 0.5, "accelerator_type": "H100"}, "RUNNING")


def test_a_group_with_no_running_replica_and_no_node_for_one_is_unplaceable():
    found = unplaceable_groups({"TextGenerator": TEXT, "SpeechTranscriber": ON_A10G},
                               GROUPS, NODES)
    assert list(found) == ["audio"]
    assert found["audio"].as_json() == {"deployment": "SpeechTranscriber",
                                        "missing": {"accelerator_type:A10G": 0.001}}


def test_a_group_whose_replica_is_only_restarting_where_a_node_holds_it_is_not():
    restarting = deployment({"num_cpus": 0.5, "resources": {"cpu_node": 0.001}}, "STARTING")
    assert unplaceable_groups({"SpeechTranscriber": restarting}, GROUPS, NODES) == {}


def test_a_running_replica_keeps_its_group_placeable_even_if_its_node_type_is_gone():
    assert unplaceable_groups({"TextGenerator": TEXT}, GROUPS, [NODES[1]]) == {}


def test_losing_the_last_node_of_a_type_makes_its_group_unplaceable():
    gone = deployment({"num_cpus": 0.5, "accelerator_type": "H100"})
    found = unplaceable_groups({"TextGenerator": gone}, GROUPS, [NODES[1]])
    assert found["text"].missing == {"accelerator_type:H100": 0.001}


def test_its_routes_answer_503_with_retry_after_and_a_json_body_naming_what_is_missing():
    found = unplaceable_groups({"SpeechTranscriber": ON_A10G}, GROUPS, NODES)
    response = error_response(found["audio"].error())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(UNPLACEABLE_RETRY_AFTER_S)
    message = json.loads(response.body)["error"]["message"]
    assert "audio group" in message and "accelerator_type:A10G" in message


class Cluster:
    """What the watch reads: the app's deployments and the live nodes, changed by the test."""

    def __init__(self) -> None:
        self.deployments = {"SpeechTranscriber": ON_A10G}
        self.reads = 0

    def read(self, app: str) -> tuple[dict, list]:
        assert app == "mmserve"
        self.reads += 1
        return self.deployments, NODES


def test_the_request_path_uses_the_last_read_without_waiting_and_refreshes_it():
    cluster = Cluster()
    watch = PlacementWatch("mmserve", GROUPS, read=cluster.read, max_age_s=0)

    async def scenario() -> list:
        first = watch.refusal("audio")  # nothing read yet: nothing known against it
        await asyncio.sleep(0.05)
        second = watch.refusal("audio")
        cluster.deployments = {"SpeechTranscriber": deployment(
            {"num_cpus": 0.5, "resources": {"cpu_node": 0.001}}, "RUNNING")}
        await asyncio.sleep(0.05)
        watch.refusal("audio")
        await asyncio.sleep(0.05)
        return [first, second, watch.refusal("audio"), watch.refusal("text")]

    first, second, after_fix, text = asyncio.run(scenario())
    assert first is None
    assert second is not None and second.retry_after_s == UNPLACEABLE_RETRY_AFTER_S
    assert after_fix is None and text is None


def test_a_failed_read_refuses_nothing():
    def broken(app: str) -> tuple[dict, list]:
        raise ConnectionError("controller restarting")

    watch = PlacementWatch("mmserve", GROUPS, read=broken)
    assert asyncio.run(watch.current()) == {}


class Handle:
    def __init__(self, deployment_name: str) -> None:
        self.deployment_name, self.app_name = deployment_name, "mmserve"


def test_only_serve_handles_are_watched():
    watch = PlacementWatch.of_handles({"text": Handle("TextGenerator"), "vision": object()})
    assert watch.app == "mmserve" and watch.groups == {"text": "TextGenerator"}
    assert PlacementWatch.of_handles({"vision": object()}).groups == {}


def test_an_old_read_refuses_nothing_while_the_next_one_runs():
    now = [0.0]
    cluster = Cluster()
    watch = PlacementWatch("mmserve", GROUPS, read=cluster.read, clock=lambda: now[0])

    async def scenario() -> list:
        await watch.current()
        fresh = watch.refusal("audio")
        now[0] += 60  # idle for a minute: the group may have been fixed since
        return [fresh, watch.refusal("audio")]

    fresh, old = asyncio.run(scenario())
    assert fresh is not None and old is None
