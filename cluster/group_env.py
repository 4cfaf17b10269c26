"""Per-replica-group Python environments, built once and cached by content.

A replica group can run in its own interpreter: Ray's `runtime_env` `py_executable` on one
machine (or on nodes sharing a disk image), `image_uri` on a container cluster. This builds the
first kind. An env is declared in cluster/envs/NAME.toml (`requirements`, optional `uninstall`);
it is built with the same Python as the cluster into $MMSERVE_HOME/envs/NAME-KEY, KEY being a
hash of the spec and the Python version, and `$MMSERVE_HOME/envs/NAME` links to the current one.
A profile names that stable path, so rebuilding after a spec change needs no profile change.

    python cluster/group_env.py build audio [vllm ...]   # idempotent; prints each interpreter
    python cluster/group_env.py python audio             # the interpreter path, if built
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

SPECS = Path(__file__).resolve().parent / "envs"
READY = ".ready"


class GroupEnvError(RuntimeError):
    """A group env that cannot be built or used, with the reason in one sentence."""


@dataclass(frozen=True)
class EnvSpec:
    name: str
    requirements: tuple[str, ...]
    uninstall: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        text = "\n".join([sys.version, *self.requirements, "--", *self.uninstall])
        return hashlib.sha1(text.encode()).hexdigest()[:12]


def envs_home() -> Path:
    home = os.environ.get("MMSERVE_HOME") or Path.home() / ".cache" / "mmserve"
    return Path(home).expanduser() / "envs"


def load_spec(name: str) -> EnvSpec:
    path = SPECS / f"{name}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SPECS.glob("*.toml")))
        raise GroupEnvError(f"no group env {name!r} in {SPECS}; known: {known}")
    data = tomllib.loads(path.read_text())
    return EnvSpec(name, tuple(data["requirements"]), tuple(data.get("uninstall", ())))


def python_path(name: str) -> Path:
    """The stable interpreter path a profile's runtime_env py_executable names."""
    return envs_home() / name / "bin" / "python"


def is_current(spec: EnvSpec) -> bool:
    link = envs_home() / spec.name
    return link.is_symlink() and os.readlink(link) == _dir_name(spec) and (
        link / READY).exists()


def ensure(name: str, log=print) -> Path:
    """Builds the env unless its current version is already there; returns its interpreter."""
    spec = load_spec(name)
    envs_home().mkdir(parents=True, exist_ok=True)
    with open(envs_home() / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs never build the same env at once
        if not is_current(spec):
            target = envs_home() / _dir_name(spec)
            shutil.rmtree(target, ignore_errors=True)  # half-built by an interrupted run
            _build(spec, target, log)
            _point_link(spec)
            _remove_stale(spec)
    return python_path(name)


def _dir_name(spec: EnvSpec) -> str:
    return f"{spec.name}-{spec.key}"


def _build(spec: EnvSpec, target: Path, log) -> None:
    log(f"building group env {spec.name!r} in {target} (once; cached afterwards)")
    # The base interpreter of the running venv: the env gets the cluster's Python version.
    _run([sys._base_executable, "-m", "venv", str(target)])
    python = str(target / "bin" / "python")
    _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          *spec.requirements])
    if spec.uninstall:
        _run([python, "-m", "pip", "uninstall", "--yes", "--quiet", *spec.uninstall])
    _check_ray_version(spec, python)
    (target / READY).write_text(spec.key)


def _check_ray_version(spec: EnvSpec, python: str) -> None:
    found = subprocess.run([python, "-c", "import ray; print(ray.__version__)"],
                           capture_output=True, text=True).stdout.strip()
    if found != version("ray"):
        raise GroupEnvError(
            f"group env {spec.name!r} has ray {found or 'missing'} but the cluster runs ray "
            f"{version('ray')}; pin ray[serve]=={version('ray')} in {SPECS / spec.name}.toml")


def _point_link(spec: EnvSpec) -> None:
    link = envs_home() / spec.name
    temporary = link.with_name(f".{spec.name}.link")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(_dir_name(spec))
    temporary.replace(link)  # atomic: a running replica never sees a missing interpreter


def _remove_stale(spec: EnvSpec) -> None:
    for old in envs_home().glob(f"{spec.name}-*"):
        if old.name != _dir_name(spec) and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise GroupEnvError(f"{' '.join(command[:4])} ... failed: {result.stderr[-1500:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python cluster/group_env.py")
    parser.add_argument("action", choices=["build", "python"])
    parser.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    try:
        for name in args.names:
            if args.action == "build":
                print(ensure(name, log=lambda m: print(m, file=sys.stderr)))
            elif not is_current(load_spec(name)):
                raise GroupEnvError(f"group env {name!r} is not built; run "
                                    f"`python cluster/group_env.py build {name}`")
            else:
                print(python_path(name))
    except GroupEnvError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
