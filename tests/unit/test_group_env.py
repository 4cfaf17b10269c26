"""Per-group Python environments: declared by a spec, built once, found again by content."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cluster import group_env
from cluster.group_env import EnvSpec, GroupEnvError


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MMSERVE_HOME", str(tmp_path))
    return tmp_path / "envs"


@pytest.fixture
def builds(monkeypatch) -> list[str]:
    """Replaces the pip install with a stand-in venv, recording each build."""
    made: list[str] = []

    def fake_build(spec: EnvSpec, target: Path, log) -> None:
        made.append(target.name)
        (target / "bin").mkdir(parents=True)
        (target / "bin" / "python").write_text("")
        (target / group_env.READY).write_text(spec.key)

    monkeypatch.setattr(group_env, "_build", fake_build)
    return made


def test_the_key_follows_the_requirements():
    a, b = EnvSpec("x", ("ray==1",)), EnvSpec("x", ("ray==2",))
    assert a.key == EnvSpec("x", ("ray==1",)).key and a.key != b.key
    assert a.key != EnvSpec("x", ("ray==1",), ("torch",)).key


def test_an_unknown_env_names_the_known_ones():
    with pytest.raises(GroupEnvError, match="audio"):
        group_env.load_spec("no-such-env")


def test_built_once_then_reused(home, builds):
    first = group_env.ensure("audio", log=lambda _: None)
    second = group_env.ensure("audio", log=lambda _: None)
    assert first == second == home / "audio" / "bin" / "python"
    assert len(builds) == 1 and group_env.is_current(group_env.load_spec("audio"))


def test_a_changed_spec_rebuilds_behind_the_same_path_and_drops_the_old(home, builds,
                                                                       monkeypatch):
    group_env.ensure("audio", log=lambda _: None)
    changed = EnvSpec("audio", ("ray[serve]==0.0.0",))
    monkeypatch.setattr(group_env, "load_spec", lambda name: changed)
    path = group_env.ensure("audio", log=lambda _: None)
    assert path == home / "audio" / "bin" / "python"
    assert os.readlink(home / "audio") == f"audio-{changed.key}"
    assert sorted(p.name for p in home.glob("audio-*")) == [f"audio-{changed.key}"]
    assert len(builds) == 2


def test_a_half_built_env_is_not_current(home, builds):
    spec = group_env.load_spec("audio")
    (home / f"audio-{spec.key}" / "bin").mkdir(parents=True)
    (home / "audio").symlink_to(f"audio-{spec.key}")
    assert not group_env.is_current(spec)
    group_env.ensure("audio", log=lambda _: None)
    assert len(builds) == 1
