"""Finding a profile and deploying it, one way for `make serve`, the bench and the tests.

A profile is a Serve config YAML (with `applications:`, as in cluster/profiles/), a YAML/JSON
file of builder args only (an AppConfig dict), or the name of one in cluster/profiles/ or
bench/profiles/. `deploy` does what `serve deploy` does (the declarative config through the
dashboard) and waits until every deployment is healthy with the user_config it was given.

Every config made here carries the app's `autoscaling_policy` when its args enable the capacity
allocator (`capacity.enabled`): Serve reads that policy from the application in the Serve config
only, never from the builder, so `make serve`, the bench and the tests get it from here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests
import yaml

from deployments.core.config import load_config
from deployments.replicas.serve_options import CAPACITY_POLICY, capacity_policy

REPO = Path(__file__).resolve().parent.parent
PROFILE_DIRS = (REPO / "cluster" / "profiles", REPO / "bench" / "profiles")
APP_NAME = "mmserve"
BUILDER = "serve_app.app:build_app"


class UnknownProfile(ValueError):
    """No file by that path, and no profile by that name."""


def profile_path(profile: str) -> Path:
    path = Path(profile)
    if path.exists():
        return path
    for folder in PROFILE_DIRS:
        for suffix in (".yaml", ".yml", ".json"):
            if (folder / f"{profile}{suffix}").exists():
                return folder / f"{profile}{suffix}"
    raise UnknownProfile(f"no profile {profile!r}; known: {', '.join(known_profiles())}")


def known_profiles() -> list[str]:
    return sorted({p.stem for folder in PROFILE_DIRS for p in folder.glob("*.y*ml")})


def serve_config(profile: str, http_port: int | None = None) -> dict[str, Any]:
    """The profile as a Serve config with one app named mmserve at "/"; with `http_port`,
    bound to it on loopback."""
    loaded = yaml.safe_load(profile_path(profile).read_text()) or {}
    if "applications" in loaded:
        config = dict(loaded)
        app = dict(config["applications"][0])
    else:  # builder args only
        config = {"proxy_location": "HeadOnly"}
        app = {"import_path": BUILDER, "args": loaded}
    app.update(name=APP_NAME, route_prefix="/")
    config["applications"] = [app]
    if http_port is not None:
        config["http_options"] = {**config.get("http_options", {}), "host": "127.0.0.1",
                                  "port": http_port}
    return with_capacity_policy(config)


def app_config(args: dict[str, Any], deployments: list[dict[str, Any]] | None = None,
               http_port: int | None = None, name: str = APP_NAME) -> dict[str, Any]:
    """A Serve config of the builder with these args (and Serve deployment overrides)."""
    app = {"name": name, "route_prefix": "/", "import_path": BUILDER, "args": args,
           "deployments": deployments or []}
    config: dict[str, Any] = {"proxy_location": "HeadOnly", "applications": [app]}
    if http_port is not None:
        config["http_options"] = {"host": "127.0.0.1", "port": http_port}
    return with_capacity_policy(config)


def with_capacity_policy(config: dict[str, Any]) -> dict[str, Any]:
    """The config with each app of this builder carrying the capacity policy its args ask
    for (serve_options.capacity_policy), and without ours where they no longer do; another
    policy written in the profile is left as it is. Args that enable the allocator are
    validated here, so a bad capacity section fails before anything is deployed."""
    return {**config, "applications": [_with_app_policy(app)
                                       for app in config.get("applications", [])]}


def _with_app_policy(app: dict[str, Any]) -> dict[str, Any]:
    args = app.get("args") or {}
    if app.get("import_path") != BUILDER:
        return app
    app = dict(app)
    if (args.get("capacity") or {}).get("enabled"):
        app["autoscaling_policy"] = capacity_policy(load_config(args))
    elif (app.get("autoscaling_policy") or {}).get("policy_function") == CAPACITY_POLICY:
        del app["autoscaling_policy"]
    return app


def with_overrides(config: dict[str, Any], deployments: list[dict[str, Any]]) -> dict[str, Any]:
    """The config with Serve-level deployment overrides (e.g. a new user_config) applied."""
    app = dict(config["applications"][0])
    by_name = {d["name"]: d for d in app.get("deployments", [])}
    for override in deployments:
        by_name[override["name"]] = {**by_name.get(override["name"], {}), **override}
    app["deployments"] = list(by_name.values())
    return {**config, "applications": [app]}


def with_args(config: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """The config with these builder args merged into its app's (nested dicts key by key), e.g.
    {"text": {"engine": {"dtype": "bfloat16"}}} changes that one field."""
    app = dict(config["applications"][0])
    app["args"] = _merged(app.get("args") or {}, args)
    return with_capacity_policy({**config, "applications": [app]})


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        both_dicts = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both_dicts else value
    return merged


def deploy(dashboard_url: str, config: dict[str, Any], timeout_s: float = 600) -> None:
    """`serve deploy` through the dashboard, then waits until every application of the config
    is running, every deployment healthy and on the user_config it was given."""
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    sdk = ServeSubmissionClient(dashboard_url)
    sdk.deploy_applications(config)
    wanted = {app["name"]: _user_configs(app) for app in config["applications"]}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            running = sdk.get_serve_details().get("applications", {})
        except requests.ConnectionError:  # the dashboard drops a request now and then under load
            time.sleep(2)
            continue
        if all(_healthy(running.get(name), user_configs)
               for name, user_configs in wanted.items()):
            return
        time.sleep(1)
    raise TimeoutError(f"{', '.join(wanted)} not running within {timeout_s} s")


def _user_configs(app: dict[str, Any]) -> dict[str, Any]:
    return {d["name"]: d["user_config"] for d in app.get("deployments", [])
            if "user_config" in d}


def _healthy(app: dict[str, Any] | None, wanted_user_configs: dict[str, Any]) -> bool:
    if not app:
        return False
    if app["status"] == "DEPLOY_FAILED":
        reasons = [d["message"] for d in app["deployments"].values() if d.get("message")]
        raise RuntimeError(f"deploy failed: {app['message']} {' '.join(reasons)}")
    deployments = app["deployments"]
    for name, user_config in wanted_user_configs.items():
        live = deployments.get(name, {}).get("deployment_config", {}).get("user_config")
        if live != user_config:
            return False
    return app["status"] == "RUNNING" and all(
        d["status"] == "HEALTHY" for d in deployments.values())
