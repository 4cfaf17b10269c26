"""The pipeline's prompt (shared by the app and the baseline stack), and the baseline imports
no Ray."""

from __future__ import annotations

import subprocess
import sys

from serve_app.prompts import SYSTEM_PROMPT, pipeline_messages

PERCEPTION = {"transcript": {"text": "open the door please", "language": "en", "duration": 2.0},
              "labels": [{"label": "building", "score": 0.7}, {"label": "person", "score": 0.2},
                         {"label": "plant", "score": 0.05}, {"label": "food", "score": 0.05}],
              "timings": {}}


def test_prompt_carries_transcript_top_three_labels_and_the_question():
    system, user = pipeline_messages("What is going on?", PERCEPTION)
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert user["content"] == ('Transcript of the audio: "open the door please"\n'
                               "The image most likely shows: building (70%), person (20%), "
                               "plant (5%).\nWhat is going on?")
    _, bare = pipeline_messages(None, {**PERCEPTION, "transcript": None, "labels": None})
    assert bare["content"] == "Respond helpfully to the content above."


def test_baseline_server_imports_no_ray():
    code = ("import sys, bench.baseline_server; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"
