"""The README's examples, run as written against the live app: first every shell example (they
make /tmp/red.png and /tmp/hello.wav), then every Python example in order, as one script."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"
DOCUMENTED_URL = "http://127.0.0.1:8000"
# Shell blocks that are examples of use (not the set-up and launch commands).
EXAMPLE_COMMANDS = ("curl ", "espeak-ng ", "base64 -d")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.M | re.S)


def test_the_readme_has_an_example_for_every_route():
    examples = "\n".join(blocks("bash") + blocks("python"))
    for route in ("/v1/models", "/v1/chat/completions", "/v1/embeddings",
                  "/v1/pipeline", "/healthz", "/readyz"):
        assert route in examples, route
    assert "transcriptions.create" in examples and "image_url" in examples


def test_the_readme_examples_run_against_the_app(app_url):
    shell = [block for block in blocks("bash") if any(c in block for c in EXAMPLE_COMMANDS)]
    for block in shell:
        out = subprocess.run(["bash", "-euo", "pipefail", "-c",
                              block.replace(DOCUMENTED_URL, app_url)],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"{block}\n{out.stderr}"
        assert '"error"' not in out.stdout, f"{block}\n{out.stdout[:2000]}"
    script = "\n".join(blocks("python")).replace(DOCUMENTED_URL, app_url)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
