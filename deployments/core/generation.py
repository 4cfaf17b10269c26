"""What a text generation takes and gives back, shared by the engines, the text replica and
the front end: sampling settings, a finished completion, a streamed delta, and the control
through which one row of a batch is ended early."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from deployments.core.deadline import expired
from deployments.core.fair_share import ANONYMOUS, Share


@dataclass(frozen=True)
class SamplingParams:
    """Per-request decoding settings; one batch may mix requests with different settings."""

    max_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # The JSON Schema (JSON text) the output must match (deployments/core/json_grammar.py);
    # None: free text.
    json_schema: str | None = None
    # The function tools the prompt offers the model (OpenAI's `tools`, JSON text), rendered
    # by the engine with its chat template (deployments/engines/tool_prompt.py); None: none.
    tools: str | None = None

    def tool_list(self) -> list[dict] | None:
        return json.loads(self.tools) if self.tools else None


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length" | "abort"


@dataclass
class RowControl:
    """What may end one row of a batch early: its caller going away (`cancelled`, set from
    another thread) or its absolute wall-clock `deadline` passing. A streamed row also has
    `on_text`, which the engine calls (from its thread) with each piece of text as it becomes
    final. `objective` (absolute wall-clock seconds, None: none) places the row in an "slo"
    waiting list (deployments/engines/waiting_queue.py), after its class and its tenant's fair
    share (`share`); neither ever ends the row."""

    cancelled: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None
    objective: float | None = None
    share: Share = ANONYMOUS
    on_text: Callable[[str], None] | None = None
    streamed_chars: int = 0  # handed to on_text so far, kept if the row is run again

    def stop_reason(self) -> str | None:
        """Why the row must stop now: "abort" once cancelled, "deadline" once the deadline
        has passed; None while it may go on."""
        if self.cancelled.is_set():
            return "abort"
        return "deadline" if expired(self.deadline) else None


@dataclass
class StreamDelta:
    """A piece of streamed text; the last one of a stream carries the finished completion."""

    text: str
    completion: Completion | None = field(default=None)
