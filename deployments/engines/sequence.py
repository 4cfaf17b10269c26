"""One request's decode state inside the scheduler: its prompt, sampling, RNG, the tokens and
text it has so far, why it finished, and how its text reaches its caller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from deployments.core.errors import DeadlineExceeded
from deployments.core.generation import Completion, RowControl, SamplingParams
from deployments.engines.grammar_mask import RowGrammar


@dataclass
class Sequence:
    prompt: list[int]
    params: SamplingParams
    generator: torch.Generator
    control: RowControl
    # Called once, from the model thread, with the Completion or the row's own error.
    on_finish: Callable[[Completion | Exception], None] = lambda outcome: None
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None  # "stop" | "length" | "abort" | "deadline"
    emitted: int = 0  # characters of `text` already streamed
    cached_prompt_tokens: int = 0  # of the prompt, found in the prefix cache
    grammar: RowGrammar | None = None  # what its output must match (grammar_mask.py)

    def __post_init__(self) -> None:
        # A row run again (after a failure) streams only what its caller lacks.
        self.emitted = self.control.streamed_chars

    @property
    def last_token(self) -> int:
        return self.tokens[-1] if self.tokens else self.prompt[-1]

    def obey_control(self) -> None:
        """Ends the row once its caller has gone away or its deadline has passed."""
        if not self.finish_reason:
            self.finish_reason = self.control.stop_reason()

    def append(self, token: int, text: str, eos: bool) -> None:
        """Adds one sampled token (`text` is the decoded text of all tokens with it) and
        finishes the row on end-of-sequence, a stop string, its grammar complete or its
        max_tokens."""
        if eos:
            self.finish_reason = "stop"
            return
        self.tokens.append(token)
        self.text = text
        if self.grammar is not None:
            self.grammar.accept(token)
        cut = _first_stop(text, self.params.stop)
        if cut is not None:
            self.text = text[:cut]
            self.finish_reason = "stop"
        elif self.grammar is not None and self.grammar.complete:
            self.finish_reason = "stop"
        elif len(self.tokens) >= self.params.max_tokens:
            self.finish_reason = "length"

    def final_text(self) -> str:
        """The text not streamed yet that can no longer change: all of it once the row has
        finished; else short of a stop string's length (it may still be cut there) and of a
        partial UTF-8 character."""
        safe = len(self.text)
        if not self.finish_reason:
            safe -= max((len(s) for s in self.params.stop if s), default=1) - 1
        while safe > self.emitted and self.text[safe - 1] == "\ufffd":
            safe -= 1
        piece = self.text[self.emitted:max(safe, self.emitted)]
        self.emitted += len(piece)
        return piece

    def stream_step(self) -> None:
        """Hands a streamed row's newly final text to its caller."""
        if self.control.on_text is not None:
            piece = self.final_text()
            if piece:
                self.control.on_text(piece)
                self.control.streamed_chars = self.emitted

    def outcome(self) -> Completion | Exception:
        if self.finish_reason == "deadline":
            return DeadlineExceeded("the completion")
        return Completion(self.text, len(self.prompt), len(self.tokens),
                          self.finish_reason or "length")


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    hits = [text.find(s) for s in stops if s and s in text]
    return min(hits) if hits else None
