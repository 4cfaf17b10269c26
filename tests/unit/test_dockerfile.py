"""cluster/Dockerfile runs only commands that exist: every file it copies is in the repository,
every `python -m MODULE` and `python SCRIPT` it runs is a module of the repository that the
image holds, and each accepts the arguments the Dockerfile gives it (its argparse reads them,
with --help so nothing is built)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.profiles import REPO

DOCKERFILE = REPO / "cluster" / "Dockerfile"
SHELL_BREAKS = {"&&", "||", ";", "|", "do", "done", "then", "fi"}
PLACEHOLDER = "audio"  # stands for a shell expansion: a group env's name


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in joined.splitlines() if line.strip()]


def copied_sources() -> list[str]:
    sources = []
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword == "COPY":
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            sources += words[:-1]
    return sources


def python_commands() -> list[list[str]]:
    """Each `python ...` a RUN line runs (not `python -c`), up to the next shell operator; a
    word with a shell expansion in it stands for a group env's name."""
    commands = []
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword != "RUN":
            continue
        words = shlex.split(args.replace(";", " ; "))
        for start, word in enumerate(words):
            if word != "python" or words[start + 1] == "-c":
                continue
            command = []
            for following in words[start + 1:]:
                if following in SHELL_BREAKS:
                    break
                command.append(PLACEHOLDER if "$" in following else following)
            commands.append(command)
    return commands


def module_path(command: list[str]) -> Path:
    if command[0] == "-m":
        dotted = REPO.joinpath(*command[1].split("."))
        return dotted / "__main__.py" if dotted.is_dir() else dotted.with_suffix(".py")
    return REPO / command[0]


def test_the_dockerfile_runs_python_commands_of_the_repository():
    assert [c[:2] if c[0] == "-m" else c[:1] for c in python_commands()] == [
        ["-m", "deployments.core.models"], ["cluster/group_env.py"]]


@pytest.mark.parametrize("source", copied_sources())
def test_every_copied_file_exists(source):
    assert (REPO / source).exists(), f"COPY {source}: not in the repository"


@pytest.mark.parametrize("command", python_commands(), ids=" ".join)
def test_every_python_command_is_a_module_the_image_holds(command):
    path = module_path(command)
    assert path.is_file(), f"python {' '.join(command)}: no {path.relative_to(REPO)}"
    top = path.relative_to(REPO).parts[0]
    assert top in copied_sources(), f"{top} is not copied into the image"
    assert 'if __name__ == "__main__":' in path.read_text(), f"{path} runs nothing"


@pytest.mark.parametrize("command", python_commands(), ids=" ".join)
def test_every_python_command_accepts_its_arguments(command):
    ran = subprocess.run([sys.executable, *command, "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=60, env={"PYTHONPATH": str(REPO)})
    assert ran.returncode == 0, ran.stderr


def test_a_module_that_does_not_exist_is_caught():
    assert not module_path(["-m", "serve_app.models"]).exists()
