"""Private directories for what `make serve` writes and then runs or reads back: the Serve
config `serve run` serves and the HAProxy wrapper Ray executes.

A fixed path under /tmp lets another local user create it first and plant either file, so these
live under $MMSERVE_HOME/run, created 0700, one fresh subdirectory per launch. A directory that
another user owns, or that a group or everyone may write to, is refused rather than used.

Ray's own temp dir stays short and under /tmp (its unix socket paths must fit in 107 bytes), and
Ray makes it world-writable itself (0777), so only its owner is checked, and nothing this
project runs is kept in it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

RUN_DIR_NAME = "run"
PRIVATE_MODE = 0o700


class UnsafeDirectory(RuntimeError):
    """A directory another user could write to, or already owns."""


def private_dir(path: Path) -> Path:
    """`path`, created 0700 if missing; refused unless this user owns it and only they may
    write to it."""
    try:
        path.mkdir(mode=PRIVATE_MODE, parents=True)
    except FileExistsError:
        pass  # checked below, whatever it is
    check_private(path)
    return path


def new_run_dir(home: Path, prefix: str) -> Path:
    """A fresh private directory for one launch, inside `home`/run."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=private_dir(home / RUN_DIR_NAME)))


def check_private(path: Path) -> None:
    info = _directory_info(path)
    check_owned(path, info)
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeDirectory(
            f"refusing to use {path}: it is group- or world-writable (mode "
            f"{stat.S_IMODE(info.st_mode):04o}), so another user could plant files in it; "
            f"chmod 700 it or remove it")


def check_owned(path: Path, info: os.stat_result | None = None) -> None:
    """Refuses a directory owned by another user (its mode is left to whoever made it)."""
    info = info or _directory_info(path)
    if info.st_uid != os.getuid():
        raise UnsafeDirectory(
            f"refusing to use {path}: it is owned by uid {info.st_uid}, not by this user "
            f"(uid {os.getuid()}), who could plant files in it; remove it or choose another "
            f"directory")


def _directory_info(path: Path) -> os.stat_result:
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a directory"
        raise UnsafeDirectory(f"refusing to use {path}: it is {kind}, not a directory of "
                              f"this user's")
    return info
