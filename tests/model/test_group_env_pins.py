"""The audio group env pins the Ray installed here."""

from __future__ import annotations

from importlib.metadata import version

from cluster import group_env


def test_the_audio_env_pins_the_cluster_ray_and_leaves_torch_out():
    spec = group_env.load_spec("audio")
    assert f"ray[serve]=={version('ray')}" in spec.requirements
    assert not any(r.startswith("torch") for r in spec.requirements)
