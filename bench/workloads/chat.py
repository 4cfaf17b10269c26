"""Chat completions with prompt and output lengths drawn from distributions, streamed or not.

Prompts are built from common English words, which are one token each in most BPE vocabularies,
so N words come close to N prompt tokens (plus the chat template's own); the report shows the
token counts the server returned. The server may stop before max_tokens (there is no
ignore_eos in the OpenAI API), so the report counts the tokens actually generated.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from bench.distributions import Distribution
from bench.workloads.base import CHAT, RequestSpec

WORDS = ("the of and to in is it that was for on are as with his they at be this from have "
         "or one had by word but not what all were we when your can said there use an each "
         "which she do how their if will up other about out many then them these so some her "
         "would make like him into time has look two more write go see number no way could "
         "people my than first water been call who oil its now find long down day did get "
         "come made may part over new sound take only little work know place year live me "
         "back give most very after thing our just name good sentence man think say great "
         "where help through much before line right too mean old any same tell boy follow came "
         "want show also around form three small set put end does another well large must big "
         "even such because turn here why ask went men read need land different home us move "
         "try kind hand picture again change off play spell air away animal house point page "
         "letter mother answer found study still learn should world high").split()
INSTRUCTION = "Write a long story that uses these words:"


def prompt_of(words: int, rng: random.Random) -> str:
    return " ".join([INSTRUCTION, *(rng.choice(WORDS) for _ in range(max(1, words - 8)))])


@dataclass
class ChatWorkload:
    prompt_len: Distribution
    output_len: Distribution
    stream: bool = True
    model: str = "smollm2-135m-instruct"
    temperature: float = 1.0
    name: str = "chat"
    response_format: dict[str, Any] | None = None  # OpenAI's, sent as it is when set

    def next_request(self, rng: random.Random) -> RequestSpec:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt_of(self.prompt_len.sample(rng), rng)}],
            "max_tokens": self.output_len.sample(rng),
            "temperature": self.temperature,
            "seed": rng.randrange(2**31),
            "stream": self.stream,
        }
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        if self.response_format is not None:
            body["response_format"] = self.response_format
        return RequestSpec(self.name, "/v1/chat/completions", CHAT, json=body, stream=self.stream)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "stream": self.stream,
                "prompt_len": str(self.prompt_len), "output_len": str(self.output_len),
                "temperature": self.temperature,
                **({"response_format": self.response_format} if self.response_format else {})}
