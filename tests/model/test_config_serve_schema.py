"""The cpu profile checked by Ray Serve's own deploy schema."""

from __future__ import annotations

import yaml

from cluster.launch import profile_path
from deployments.core.config import load_config


def test_cpu_profile_is_a_valid_serve_config_with_valid_args():
    from ray.serve.schema import ServeDeploySchema

    document = yaml.safe_load(profile_path("cpu").read_text())
    schema = ServeDeploySchema.model_validate(document)
    assert schema.http_options.host == "127.0.0.1"
    app = document["applications"][0]
    assert app["import_path"] == "serve_app.app:build_app"
    load_config(app["args"])
