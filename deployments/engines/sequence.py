"""One request's decode state inside the scheduler: its prompt, sampling, RNG, the tokens and
text it has so far (with their logprobs when asked for), why it finished, and how its text
reaches its caller. A request of n choices is n rows: the first, and the forks of it that
share its prefill (choice_fork.py gathers their outcomes)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from deployments.core.errors import DeadlineExceeded
from deployments.core.generation import Completion, RowControl, SamplingParams, StreamDelta
from deployments.engines.choice_fork import ChoiceGroup, choice_seed
from deployments.engines.grammar_mask import RowGrammar
from deployments.engines.sampling import make_generator
from deployments.engines.token_logprobs import released


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
    index: int = 0  # its choice among the request's n
    choices: ChoiceGroup | None = None  # gathers the outcomes when n > 1
    counts: Counter = field(default_factory=Counter)  # each generated token's occurrences
    logprobs: list[dict] | None = None  # per token, when asked for
    token_ends: list[int] = field(default_factory=list)  # len(text) once each token was added
    logprobs_sent: int = 0  # entries streamed so far
    grammar: RowGrammar | None = None  # what its output must match (grammar_mask.py)

    def __post_init__(self) -> None:
        # A row run again (after a failure) streams only what its caller lacks.
        self.emitted = self.control.streamed_chars
        if self.params.logprobs and self.logprobs is None:
            self.logprobs = []

    def fork(self, index: int) -> Sequence:
        """Choice `index` of this request, decoded from the same prefill: its own RNG (seeded
        with the request's seed plus `index`), stream and outcome; cancelled and timed with
        the request (its control's event and deadline are shared)."""
        seeded = dataclasses.replace(self.params, seed=choice_seed(self.params.seed, index))
        return Sequence(self.prompt, self.params, make_generator(seeded),
                        dataclasses.replace(self.control, streamed_chars=0),
                        on_finish=self.choices.finisher(index),
                        cached_prompt_tokens=self.cached_prompt_tokens, index=index,
                        choices=self.choices,
                        grammar=None if self.grammar is None else self.grammar.copy())

    @property
    def last_token(self) -> int:
        return self.tokens[-1] if self.tokens else self.prompt[-1]

    def obey_control(self) -> None:
        """Ends the row once its caller has gone away or its deadline has passed."""
        if not self.finish_reason:
            self.finish_reason = self.control.stop_reason()

    def append(self, token: int, text: str, eos: bool, logprob: dict | None = None) -> None:
        """Adds one sampled token (`text` is the decoded text of all tokens with it, `logprob`
        its entry when asked for) and finishes the row on end-of-sequence, a stop string, its
        grammar complete or its max_tokens."""
        if eos:
            self.finish_reason = "stop"
            return
        self.tokens.append(token)
        self.counts[token] += 1
        if self.logprobs is not None and logprob is not None:
            self.logprobs.append(logprob)
            self.token_ends.append(len(text))
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
        """Hands a streamed row's newly final text to its caller, with the logprobs of the
        tokens whose text has all gone out."""
        if self.control.on_text is not None:
            piece, entries = self.final_text(), self._released_logprobs()
            if piece or entries:
                self.control.on_text(StreamDelta(piece, index=self.index, logprobs=entries))
                self.control.streamed_chars = self.emitted

    def _released_logprobs(self) -> list[dict] | None:
        if self.logprobs is None:
            return None
        upto = released(self.token_ends, self.logprobs_sent, self.emitted,
                        bool(self.finish_reason))
        entries, self.logprobs_sent = self.logprobs[self.logprobs_sent:upto], upto
        return entries

    def outcome(self) -> Completion | Exception:
        if self.finish_reason == "deadline":
            return DeadlineExceeded("the completion")
        return Completion(self.text, len(self.prompt), len(self.tokens),
                          self.finish_reason or "length", self.logprobs)


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    hits = [text.find(s) for s in stops if s and s in text]
    return min(hits) if hits else None
