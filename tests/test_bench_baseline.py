"""The baseline stack builds the same LLM prompt as the app's pipeline, so both do the same
work; and the baseline imports no Ray."""

from __future__ import annotations

import subprocess
import sys

from bench.baseline_models import pipeline_messages
from serve_app.pipeline import MultimodalPipeline
from serve_app.protocol import PipelineRequest

PERCEPTION = {"transcript": {"text": "open the door please", "language": "en", "duration": 2.0},
              "labels": [{"label": "building", "score": 0.7}, {"label": "person", "score": 0.2},
                         {"label": "plant", "score": 0.05}, {"label": "food", "score": 0.05}],
              "timings": {}}


def test_baseline_pipeline_prompt_matches_the_app():
    app = MultimodalPipeline(None, None, None, 10.0, 16)
    for prompt in ("What is going on?", None):
        for perception in (PERCEPTION, {**PERCEPTION, "labels": None},
                           {**PERCEPTION, "transcript": None}):
            expected = app._messages(PipelineRequest(prompt=prompt), perception)
            assert pipeline_messages(prompt, perception) == expected


def test_baseline_server_imports_no_ray():
    code = ("import sys, bench.baseline_server; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"
