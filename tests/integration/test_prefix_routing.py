"""Prefix routing on a real cluster: with two text replicas and `text.routing: prefix`, every
turn of a conversation lands on the one replica its opening hashes to; with `routing:
default`, the same requests spread over both.

Which replica served a request is read from the replicas themselves: each replica's prefix
cache counts the prompt tokens it looked up (engine_stats, asked of each replica directly), so
after one conversation's requests exactly one replica's count grew. The shared app is
redeployed with its text group at two replicas (half a CPU each, with vision and audio at half
a CPU: the 2-CPU test cluster's all), every group replaced stop-first since no surge fits, and
restored after.
"""

from __future__ import annotations

import copy

import pytest

from bench.suites.prefix_routing import replica_answers
from cluster.deploy import app_config
from cluster.deploy import deploy as deploy_config
from deployments.replicas.prefix_router import affinity_key, rank
from tests.conftest import APP_NAME, TEST_ARGS, deploy
from tests.system.cluster.serve_state import wait_for

pytestmark = pytest.mark.integration
TEXT = "TextGenerator"
LOOKED_UP = "prefix_cache_looked_up_tokens"
TURNS = 4
SYSTEM = ("You are a careful assistant for a small bookshop. Answer in one short sentence and "
          "never invent titles.")


def conversation(topic: str, turns: int) -> list[list[dict]]:
    """The message lists of a conversation's first `turns` turns (answers made up)."""
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Tell me about {topic}."}]
    lists = [list(messages)]
    for i in range(1, turns):
        messages += [{"role": "assistant", "content": f"Here is note {i} on {topic}."},
                     {"role": "user", "content": f"And what else about {topic}, part {i}?"}]
        lists.append(list(messages))
    return lists


def text_replicas(ray_cluster) -> dict[str, str]:
    """{replica id: state} of the text group."""
    from bench.replica_kill import ReplicaView

    return {r.replica_id: r.state
            for r in ReplicaView(ray_cluster.dashboard_url, APP_NAME).replicas(TEXT)}


def looked_up(ray_cluster) -> dict[str, int]:
    answers = replica_answers(ray_cluster.dashboard_url, APP_NAME, TEXT, "engine_stats")
    return {replica: stats[LOOKED_UP] for replica, stats in answers.items()}


def replicas_serving(ray_cluster, client, topic: str) -> set[str]:
    """The replicas whose prefix cache was looked up while one conversation's turns ran."""
    before = looked_up(ray_cluster)
    for messages in conversation(topic, TURNS):
        response = client.post("/v1/chat/completions", json={
            "model": "smollm2-135m-instruct", "messages": messages, "max_tokens": 2,
            "temperature": 0})
        assert response.status_code == 200, response.text
    after = looked_up(ray_cluster)
    return {replica for replica, count in after.items() if count > before.get(replica, 0)}


def deploy_two_text_replicas(ray_cluster, routing: str) -> list[str]:
    args = copy.deepcopy(TEST_ARGS)
    # Changed args give every deployment a new code version, so every group rolls; stop-first,
    # since the 2-CPU cluster has no room for any group's surge beside two text replicas.
    args["text"].update(num_replicas=2, routing=routing)
    for group in ("text", "vision", "audio"):
        args[group]["max_surge_percent"] = 0
    deploy_config(ray_cluster.dashboard_url,
                  app_config(args, None, ray_cluster.http_port, name=APP_NAME), 300)
    wait_for(lambda: list(text_replicas(ray_cluster).values()) == ["RUNNING"] * 2, 300,
             "two running text replicas")
    return sorted(text_replicas(ray_cluster))


def test_prefix_routing_keeps_each_conversation_on_one_replica_default_spreads_them(
        ray_cluster, app_url, client):
    try:
        ids = deploy_two_text_replicas(ray_cluster, "prefix")
        # Topics whose openings hash to each of the two replicas, two of each.
        homes: dict[str, list[str]] = {replica: [] for replica in ids}
        for i in range(64):
            topic = f"topic {i}"
            key = affinity_key((conversation(topic, 1)[0],))
            home = rank(key, ids)[0]
            if len(homes[home]) < 2:
                homes[home].append(topic)
        topics = {topic: home for home, chosen in homes.items() for topic in chosen}
        assert len(topics) == 4
        for topic, home in topics.items():
            assert replicas_serving(ray_cluster, client, topic) == {home}, topic
        # Again: the same conversations go back to the same replicas.
        for topic, home in list(topics.items())[:2]:
            assert replicas_serving(ray_cluster, client, topic) == {home}, topic

        deploy_two_text_replicas(ray_cluster, "default")
        served = [replicas_serving(ray_cluster, client, topic) for topic in topics]
        assert any(len(replicas) == 2 for replicas in served), served
        assert set().union(*served) == set(sorted(text_replicas(ray_cluster)))
    finally:
        deploy(ray_cluster)
        wait_for(lambda: list(text_replicas(ray_cluster).values()) == ["RUNNING"], 300,
                 "the shared app's single text replica")
