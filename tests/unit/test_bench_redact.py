"""API keys never reach what the bench writes: the command line it records, and every report
file (JSON and Markdown), whatever carried the key in."""

from __future__ import annotations

import json

import pytest

from bench import redact
from bench.cli import command_line
from bench.report import write_json, write_text

KEY = "sk-test-0123456789abcdef"


@pytest.fixture(autouse=True)
def no_known_keys(monkeypatch):
    monkeypatch.setattr(redact, "_registered", set())
    for name in redact.KEY_ENVS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("argv, recorded", [
    (["fuzz", "--url", "http://127.0.0.1:8000", "--api-key", KEY, "--requests", "10"],
     "fuzz --url http://127.0.0.1:8000 --api-key '<redacted>' --requests 10"),
    (["fuzz", f"--api-key={KEY}"], "fuzz '--api-key=<redacted>'"),
    (["fuzz", "--api", KEY, "--seed", "3"], "fuzz --api '<redacted>' --seed 3"),
    (["soak", "--url", f"http://user:{KEY}@10.0.0.5:8000"],
     "soak --url 'http://user:<redacted>@10.0.0.5:8000'"),
    (["run", "--url", f"http://:{KEY}@h:8000/v1"], "run --url 'http://:<redacted>@h:8000/v1'"),
])
def test_the_recorded_command_line_holds_no_key(argv, recorded):
    line = command_line(argv)
    assert KEY not in line
    assert line == "python -m bench " + recorded


def test_a_command_line_without_secrets_is_recorded_as_given():
    argv = ["run", "--url", "http://127.0.0.1:8000", "--workload", "mixed", "--name", "a:b@c"]
    assert command_line(argv) == "python -m bench " + " ".join(argv)


def test_report_files_are_scrubbed_of_a_key_given_on_the_command_line(tmp_path):
    redact.register_secret(KEY)
    report = {"command": f"python -m bench fuzz --api-key {KEY}",
              "violation_examples": [{"request": f'headers {{"Authorization": "Bearer {KEY}"}}'}],
              "target": f"http://u:{KEY}@h:8000"}
    json_text = write_json(report, tmp_path / "r.json").read_text()
    markdown = write_text(f"- command: `{report['command']}`\n", tmp_path / "r.md").read_text()
    assert KEY not in json_text and KEY not in markdown
    assert json.loads(json_text)["violation_examples"][0]["request"] == \
        'headers {"Authorization": "Bearer <redacted>"}'
    assert markdown == "- command: `python -m bench fuzz --api-key <redacted>`\n"


def test_keys_from_the_environment_are_scrubbed_even_json_escaped(tmp_path, monkeypatch):
    quoted_key = 'k3y"with\\quotes'
    monkeypatch.setenv("MMSERVE_API_KEY", quoted_key)
    monkeypatch.setenv("MMSERVE_API_KEYS", f"server-key-one, {KEY}")
    text = write_json({"a": quoted_key, "b": [f"x {KEY} y", "server-key-one"]},
                      tmp_path / "r.json").read_text()
    for secret in (quoted_key, json.dumps(quoted_key)[1:-1], KEY, "server-key-one"):
        assert secret not in text
    assert json.loads(text) == {"a": "<redacted>", "b": ["x <redacted> y", "<redacted>"]}


def test_a_key_too_short_to_scrub_safely_is_left_in_the_text_but_not_the_command(tmp_path):
    redact.register_secret("abc")
    assert write_text("abcdef", tmp_path / "r.md").read_text() == "abcdef"
    assert command_line(["fuzz", "--api-key", "abc"]).endswith("--api-key '<redacted>'")
