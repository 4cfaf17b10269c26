"""The audio group runs in its own Python environment (runtime_env py_executable), not in the
project venv the other groups use, and serves from there."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from ray import serve

from cluster import group_env
from tests.system.cluster.serve_state import APP

pytestmark = pytest.mark.integration


def replica_python(deployment: str) -> str:
    return serve.get_deployment_handle(deployment, app_name=APP).batch_stats.remote().result()[
        "python"]


def can_import(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def test_audio_replica_runs_under_the_group_interpreter(mixed_app):
    audio_python = Path(replica_python("SpeechTranscriber"))
    assert audio_python == group_env.python_path("audio")
    assert audio_python.parent != Path(sys.executable).parent
    # The other groups run in the project venv, the one this test and the cluster run in.
    assert Path(replica_python("TextGenerator")).parent == Path(sys.executable).parent


def test_the_group_env_is_its_own_not_the_project_venv(mixed_app):
    audio_python = replica_python("SpeechTranscriber")
    assert can_import(audio_python, "faster_whisper")
    assert not can_import(audio_python, "torch")  # the project venv has it; this env does not
    assert can_import(replica_python("ImageEmbedder"), "torch")


def test_audio_served_from_the_group_env(mixed_app):
    from openai import OpenAI

    from tests.media import speech_wav, words

    client = OpenAI(base_url=f"{mixed_app.url}/v1", api_key="unused")
    result = client.audio.transcriptions.create(
        model="whisper-base", file=("clip.wav", io.BytesIO(speech_wav()), "audio/wav"))
    assert "dog" in words(result.text)
