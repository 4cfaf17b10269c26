"""A rollout's settings: replicas that drain within the request deadline, a surge before the
old ones stop, and a canary validated as its group's own settings."""

import pytest

from deployments.core.config import ConfigError, load_config
from deployments.replicas.serve_options import canary_name, deployment_options, drain_timeout_s

CANARY = {"weight": 0.1, "overrides": {"version": "v2", "engine": {"threads": 2}}}


def test_a_replaced_replica_drains_for_longer_than_any_request_may_last():
    config = load_config({"ingress": {"request_timeout_s": 300}})
    drain = drain_timeout_s(config)
    assert drain > 300
    options = deployment_options(config.text, "T", drain_s=drain)
    assert options["graceful_shutdown_timeout_s"] == drain


def test_a_group_starts_its_replacements_before_stopping_the_old_replicas_by_default():
    assert deployment_options(load_config({}).audio, "A")["max_surge_percent"] == 100
    stop_first = load_config({"audio": {"max_surge_percent": 0}}).audio
    assert deployment_options(stop_first, "A")["max_surge_percent"] == 0


def test_a_canary_is_the_group_with_its_overrides_and_no_canary_of_its_own():
    text = load_config({"text": {"num_replicas": 2, "canary": CANARY}}).text
    canary = text.canary_settings()
    assert (canary.version, canary.engine.threads, canary.num_replicas) == ("v2", 2, 2)
    assert canary.engine.model == text.engine.model and canary.canary is None
    assert load_config({}).text.canary_settings() is None
    assert canary_name("TextGenerator") == "TextGenerator-canary"


@pytest.mark.parametrize(("canary", "message"), [
    ({"weight": 0.1, "overrides": {}}, "change nothing"),
    ({"weight": 0.1, "overrides": {"version": ""}}, "change nothing"),
    ({"weight": 0.1, "overrides": {"engine": {"treads": 2}}}, "engine.treads"),
    ({"weight": 0.1, "overrides": {"num_replicas": 0}}, "num_replicas"),
    ({"weight": 0.1, "overrides": {"canary": CANARY}}, "cannot hold a canary"),
    ({"weight": 1, "overrides": {"version": "v2"}}, "weight"),
    ({"weight": 0, "overrides": {"version": "v2"}}, "weight"),
    ({"overrides": {"version": "v2"}}, "weight"),
])
def test_a_canary_that_is_not_another_valid_version_is_refused(canary, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"vision": {"canary": canary}})
