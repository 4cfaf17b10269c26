"""The private run directory of `make serve`: what it writes and Ray runs (the Serve config, the
HAProxy wrapper) goes only into a directory this user owns and no one else may write to."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cluster.local_ray import LocalRay
from cluster.run_dir import UnsafeDirectory, check_owned, new_run_dir, private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_missing_run_dir_is_made_readable_by_its_owner_alone(tmp_path):
    made = new_run_dir(tmp_path / "home", "serve-")
    assert made.parent == tmp_path / "home" / "run"
    assert mode(made.parent) == 0o700 and mode(made) == 0o700
    assert new_run_dir(tmp_path / "home", "serve-") != made  # one per launch


@pytest.mark.parametrize("unsafe_mode", [0o770, 0o707, 0o777, 0o1777])
def test_a_directory_others_may_write_to_is_refused(tmp_path, unsafe_mode):
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(unsafe_mode)
    with pytest.raises(UnsafeDirectory, match=r"refusing to use .*run: it is group- or "
                                              r"world-writable"):
        private_dir(run)


def test_a_directory_others_may_only_read_is_used(tmp_path):
    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    assert private_dir(run) == run


def test_a_directory_of_another_user_is_refused(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setattr(os, "getuid", lambda: run.stat().st_uid + 1)
    with pytest.raises(UnsafeDirectory, match="owned by uid .*, not by this user"):
        private_dir(run)


def test_a_symbolic_link_is_refused_even_to_a_private_directory(tmp_path):
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    link = tmp_path / "run"
    link.symlink_to(target)
    with pytest.raises(UnsafeDirectory, match="it is a symbolic link"):
        private_dir(link)


def test_a_file_in_place_of_the_directory_is_refused(tmp_path):
    (tmp_path / "run").write_text("")
    with pytest.raises(UnsafeDirectory, match="it is not a directory"):
        private_dir(tmp_path / "run")


def test_the_ray_temp_dir_needs_only_its_owner(tmp_path, monkeypatch):
    """Ray makes its temp dir world-writable itself; whose it is is what is checked."""
    temp = tmp_path / "ray"
    temp.mkdir(mode=0o777)
    temp.chmod(0o777)
    check_owned(temp)
    monkeypatch.setattr(os, "getuid", lambda: temp.stat().st_uid + 1)
    with pytest.raises(UnsafeDirectory, match="owned by uid"):
        check_owned(temp)


def test_a_head_refuses_a_temp_dir_of_another_user_before_starting_anything(
        tmp_path, monkeypatch):
    temp = tmp_path / "ray"
    temp.mkdir()
    monkeypatch.setattr(os, "getuid", lambda: temp.stat().st_uid + 1)
    head = LocalRay(temp_dir=str(temp), token_auth=False)
    with pytest.raises(UnsafeDirectory):
        head.start()
    assert head.process is None
