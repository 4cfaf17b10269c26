"""Multi-turn chat: conversations that open with one long system prompt, the same for every
conversation, and grow a turn at a time, so a server that caches prompt prefixes has something
to reuse (the system prompt across conversations, the earlier turns within one).

With `context="own"`, each conversation opens with a long system prompt of its own instead (a
document it is about, drawn from the loop's rng): nothing is shared across conversations, and
what a server can reuse is only a conversation's own earlier turns, on the replica that served
them. That is the workload a prefix-aware router is for.

Each request loop of a client (each has its own seeded rng) holds one conversation. Turn k
sends the system prompt, the k-1 earlier user messages each followed by its answer, and a new
user message; after `turns` turns the loop starts a new conversation. The client does not hand
the server's answers back to a workload, so each earlier answer is a synthetic one drawn from
the loop's rng, as many words as that turn's `max_tokens`: deterministic for a seed, and the
length the server would have written had it used its whole budget. In an open loop every
request shares one rng, so turns follow one another whether or not the previous one answered.
"""

from __future__ import annotations

import random
import weakref
from dataclasses import dataclass, field
from typing import Any

from bench.distributions import Distribution
from bench.workloads.base import CHAT, RequestSpec
from bench.workloads.chat import WORDS

SYSTEM_PROMPT_SEED = 13  # the system prompt is the same whatever the run's seed
SYSTEM_PREAMBLE = ("You are a patient writing assistant. Keep every story consistent with the "
                   "earlier turns of the conversation. Here are the house rules and the words "
                   "the stories may use:")
USER_ASK = "Continue the story, using these words:"


def system_prompt(words: int) -> str:
    """`words` words, about as many tokens: the preamble, then common one-token words."""
    return words_after(SYSTEM_PREAMBLE, words, random.Random(SYSTEM_PROMPT_SEED))


def words_after(lead: str, words: int, rng: random.Random) -> str:
    """`lead`, then common words drawn from `rng` up to `words` words (at least one)."""
    start = lead.split()
    return " ".join([*start, *(rng.choice(WORDS) for _ in range(max(1, words - len(start))))])


@dataclass
class _Conversation:
    system: str
    messages: list[dict[str, str]] = field(default_factory=list)  # turns so far, no system
    turns: int = 0


@dataclass
class MultiTurnWorkload:
    turns: int = 4
    system_prompt_len: int = 400  # words, about as many tokens
    prompt_len: Distribution = field(default_factory=lambda: Distribution.parse("uniform:32,128"))
    output_len: Distribution = field(default_factory=lambda: Distribution.parse("uniform:16,64"))
    stream: bool = True
    model: str = "smollm2-135m-instruct"
    temperature: float = 1.0
    context: str = "shared"  # or "own": each conversation its own system prompt
    name: str = "multi-turn"
    system: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        if self.turns < 1:
            raise ValueError(f"turns must be at least 1, got {self.turns}")
        if self.context not in ("shared", "own"):
            raise ValueError(f"context must be shared or own, got {self.context!r}")
        self.system = system_prompt(self.system_prompt_len)
        self._conversations: weakref.WeakKeyDictionary[random.Random, _Conversation] = \
            weakref.WeakKeyDictionary()

    def next_request(self, rng: random.Random) -> RequestSpec:
        conversation = self._conversations.get(rng)
        if conversation is None or conversation.turns >= self.turns:
            conversation = self._conversations[rng] = _Conversation(self._system(rng))
        user = {"role": "user", "content": words_after(USER_ASK, self.prompt_len.sample(rng), rng)}
        max_tokens = self.output_len.sample(rng)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": conversation.system},
                         *conversation.messages,
                         user],
            "max_tokens": max_tokens, "temperature": self.temperature,
            "seed": rng.randrange(2**31), "stream": self.stream,
        }
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        conversation.messages += [user, {"role": "assistant",
                                         "content": words_after("", max_tokens, rng)}]
        conversation.turns += 1
        return RequestSpec(self.name, "/v1/chat/completions", CHAT, json=body, stream=self.stream)

    def _system(self, rng: random.Random) -> str:
        if self.context == "shared":
            return self.system
        return words_after(SYSTEM_PREAMBLE, self.system_prompt_len, rng)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "stream": self.stream,
                "turns": self.turns, "system_prompt_len": self.system_prompt_len,
                "context": self.context,
                "prompt_len": str(self.prompt_len), "output_len": str(self.output_len),
                "temperature": self.temperature, "previous_answers": "synthetic"}

    # The workload travels to the client actors pickled; conversations start there afresh.
    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_conversations"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._conversations = weakref.WeakKeyDictionary()
