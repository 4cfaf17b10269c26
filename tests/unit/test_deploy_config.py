"""One way to find a profile and turn it into a Serve config (cluster/deploy.py), for
`make serve`, the bench and the tests."""

from __future__ import annotations

import pytest
import yaml

from cluster.deploy import (
    APP_NAME,
    UnknownProfile,
    app_config,
    profile_path,
    serve_config,
    with_args,
    with_overrides,
)


def test_profiles_are_found_by_name_in_cluster_then_bench_or_by_path(tmp_path):
    assert profile_path("cpu").parent.name == "profiles"
    assert profile_path("cpu").parent.parent.name == "cluster"
    assert profile_path("clip").parent.parent.name == "bench"
    own = tmp_path / "mine.yaml"
    own.write_text("text: {}\n")
    assert profile_path(str(own)) == own
    with pytest.raises(UnknownProfile, match="known: .*cpu"):
        profile_path("no-such-profile")


def test_a_profile_becomes_one_app_at_the_root_on_a_loopback_port(tmp_path):
    full = serve_config("cpu", http_port=18000)
    app = full["applications"][0]
    assert (app["name"], app["route_prefix"]) == (APP_NAME, "/")
    assert full["http_options"]["host"] == "127.0.0.1" and full["http_options"]["port"] == 18000
    args_only = tmp_path / "args.yaml"
    args_only.write_text(yaml.safe_dump({"text": {"num_replicas": 1}}))
    built = serve_config(str(args_only))
    assert built["applications"][0]["args"] == {"text": {"num_replicas": 1}}
    assert built["applications"][0]["import_path"] == "serve_app.app:build_app"
    assert "http_options" not in built


def test_overrides_merge_by_deployment_name():
    config = app_config({}, [{"name": "ImageEmbedder", "num_replicas": 2}])
    changed = with_overrides(config, [{"name": "ImageEmbedder", "user_config": {"a": 1}},
                                      {"name": "TextGenerator", "num_replicas": 1}])
    deployments = {d["name"]: d for d in changed["applications"][0]["deployments"]}
    assert deployments["ImageEmbedder"] == {"name": "ImageEmbedder", "num_replicas": 2,
                                            "user_config": {"a": 1}}
    assert deployments["TextGenerator"]["num_replicas"] == 1
    assert config["applications"][0]["deployments"] == [{"name": "ImageEmbedder",
                                                         "num_replicas": 2}]


def test_args_merge_field_by_field_and_leave_the_config_as_it_was():
    config = serve_config("cpu-transformers")
    changed = with_args(config, {"text": {"engine": {"dtype": "float32"}}})
    engine = changed["applications"][0]["args"]["text"]["engine"]
    assert engine["dtype"] == "float32" and engine["name"] == "transformers"
    assert changed["applications"][0]["args"]["vision"] == config["applications"][0]["args"][
        "vision"]
    assert config["applications"][0]["args"]["text"]["engine"]["dtype"] == "auto"
