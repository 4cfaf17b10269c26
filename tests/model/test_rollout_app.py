"""The app graph a rollout deploys: every deployment drains to the request deadline and surges,
and a group's canary is a deployment of its own whose handle the ingress gets."""

from __future__ import annotations

from ray.serve._private.build_app import build_app as build

from serve_app.app import build_app

CANARY = {"weight": 0.2, "overrides": {"version": "v2"}}


def deployments(args: dict) -> dict:
    return {d.name: d for d in build(build_app(args), name="rollout").deployments}


def test_a_canary_is_a_deployment_of_its_own_and_the_ingress_holds_its_handle():
    built = deployments({"text": {"version": "v1", "canary": CANARY}})
    assert set(built) == {"Ingress", "TextGenerator", "TextGenerator-canary", "ImageEmbedder",
                          "SpeechTranscriber"}
    assert built["TextGenerator"].init_args[0]["version"] == "v1"
    assert built["TextGenerator-canary"].init_args[0]["version"] == "v2"
    assert set(built["Ingress"].init_args[-1]) == {"text"}
    assert "TextGenerator-canary" not in deployments({"text": {"version": "v2"}})


def test_the_main_group_does_not_restart_when_its_canary_comes_or_goes():
    with_canary = deployments({"text": {"canary": CANARY}})["TextGenerator"]
    without = deployments({})["TextGenerator"]
    assert with_canary.init_args == without.init_args


def test_every_deployment_drains_past_the_request_deadline_and_surges():
    built = deployments({"ingress": {"request_timeout_s": 60}})
    for deployment in built.values():
        config = deployment._deployment_config
        assert config.graceful_shutdown_timeout_s > 60
        assert config.max_surge_percent == 100
