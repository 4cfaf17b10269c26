"""A deployment asking for a resource no node has stays pending with a clear status, while the
rest of the app keeps serving."""

from __future__ import annotations

import copy

import httpx
import pytest

from cluster.placement import node_table, unplaceable_deployments
from tests.media import b64, png_image, speech_wav
from tests.system.cluster.serve_state import app_details, deploy, deploy_and_wait, wait_for

pytestmark = pytest.mark.integration
# The gpu profile's audio placement, on a cluster that has no A10G node. Without surge, so the
# old replica stops first, as when the group's only node type is gone: with the profile's
# surge, the old replica would keep serving until its replacement ran.
ON_A10G = {"name": "SpeechTranscriber", "max_surge_percent": 0,
           "ray_actor_options": {"num_cpus": 0.5, "accelerator_type": "A10G"}}


def with_override(config: dict, override: dict) -> dict:
    changed = copy.deepcopy(config)
    changed["applications"][0]["deployments"] = [override]
    return changed


def scheduling_message(dashboard: str) -> str:
    return app_details(dashboard)["deployments"]["SpeechTranscriber"]["message"]


def test_unplaceable_deployment_pends_with_a_clear_status_while_the_rest_serves(mixed_app):
    from ray.util.state import list_actors

    dashboard = mixed_app.dashboard
    try:
        deploy(dashboard, with_override(mixed_app.config, ON_A10G))
        message = wait_for(lambda: "to be scheduled" in scheduling_message(dashboard)
                           and scheduling_message(dashboard), 120, "a scheduling message")
        assert '"accelerator_type:A10G": 0.001' in message

        details = app_details(dashboard)
        audio = details["deployments"].pop("SpeechTranscriber")
        assert details["status"] == "DEPLOYING" and audio["status"] == "UPDATING"
        assert [r["state"] for r in audio["replicas"]] == ["STARTING"]
        assert all(d["status"] == "HEALTHY" for d in details["deployments"].values())
        pending = list_actors(address=dashboard, filters=[
            ("class_name", "=", "ServeReplica:mmserve:SpeechTranscriber"),
            ("state", "=", "PENDING_CREATION")])
        assert len(pending) == 1

        with httpx.Client(base_url=mixed_app.url, timeout=120) as client:
            embedding = client.post("/v1/embeddings", json={
                "model": "clip-vit-b-32-image", "input": b64(png_image())})
            assert embedding.status_code == 200, embedding.text
            chat = client.post("/v1/chat/completions", json={
                "model": "smollm2-135m-instruct", "max_tokens": 4,
                "messages": [{"role": "user", "content": "Hi"}]})
            assert chat.status_code == 200, chat.text
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["deployments"] == {"text": "ready", "vision": "ready",
                                                   "audio": "down"}
            assert ready.json()["unplaceable"] == {"audio": {
                "deployment": "SpeechTranscriber", "missing": {"accelerator_type:A10G": 0.001}}}
            assert int(ready.headers["Retry-After"]) >= 1
            # At once, not at the request's deadline: 503 naming what no node has.
            audio_call = client.post("/v1/audio/transcriptions", files={
                "file": ("a.wav", speech_wav(), "audio/wav")}, data={"model": "whisper-base"},
                headers={"X-Request-Timeout": "20"})
            assert audio_call.status_code == 503, audio_call.text
            assert int(audio_call.headers["Retry-After"]) >= 1
            assert "accelerator_type:A10G" in audio_call.json()["error"]["message"]
        stuck = unplaceable_deployments(dashboard, node_table(dashboard))
        assert any("SpeechTranscriber" in line and "accelerator_type:A10G" in line
                   for line in stuck)
    finally:
        deploy_and_wait(dashboard, mixed_app.config)
        wait_for(lambda: "unplaceable" not in httpx.get(f"{mixed_app.url}/readyz",
                                                        timeout=10).json(),
                 60, "the ingress to see the audio group placed again")
