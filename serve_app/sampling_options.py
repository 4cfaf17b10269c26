"""The OpenAI sampling options a text route takes beside its prompt: `n`, `logprobs` and
`top_logprobs`, `presence_penalty` and `frequency_penalty`, `logit_bias`. A request model
inherits them and hands them to the text group with `sampling_fields()`: chat completions all
of them (SamplingOptions), completions all but chat's `logprobs` and `top_logprobs`
(ChoiceOptions; its own legacy `logprobs` is serve_app/protocol.py's). Out of range is a 400
naming the field, as OpenAI answers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator

MAX_CHOICES = 8
MAX_TOP_LOGPROBS = 20
MAX_LOGIT_BIAS_ENTRIES = 300
MAX_BIAS = 100.0
MAX_PENALTY = 2.0


class ChoiceOptions(BaseModel):
    """How many choices, and what shifts their tokens' logits: the options every text route
    takes alike."""

    n: int = Field(1, ge=1, le=MAX_CHOICES,
                   description="choices to generate, sharing one prefill")
    presence_penalty: float | None = Field(None, ge=-MAX_PENALTY, le=MAX_PENALTY)
    frequency_penalty: float | None = Field(None, ge=-MAX_PENALTY, le=MAX_PENALTY)
    logit_bias: dict[str, float] | None = Field(
        None, description="token id (a string) -> bias added to its logit, -100 to 100")

    @field_validator("logit_bias")
    @classmethod
    def _valid_bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        if len(value) > MAX_LOGIT_BIAS_ENTRIES:
            raise ValueError(f"{len(value)} entries; the limit is {MAX_LOGIT_BIAS_ENTRIES}")
        for token, bias in value.items():
            if not token.isascii() or not token.isdigit():
                raise ValueError(f"{token!r} is not a token id (a non-negative integer)")
            if not -MAX_BIAS <= bias <= MAX_BIAS:
                raise ValueError(f"the bias of token {token} is {bias}; it must be from "
                                 f"{-MAX_BIAS:g} to {MAX_BIAS:g}")
        return value

    def choice_fields(self) -> dict[str, Any]:
        """These options as deployments.core.generation.SamplingParams keywords."""
        return {
            "n": self.n,
            "presence_penalty": self.presence_penalty or 0.0,
            "frequency_penalty": self.frequency_penalty or 0.0,
            "logit_bias": tuple(sorted((int(token), bias)
                                       for token, bias in (self.logit_bias or {}).items())),
        }


class SamplingOptions(ChoiceOptions):
    """Chat's options: the choices' and, per token, its logprob and `top_logprobs` others."""

    logprobs: bool | None = Field(None, description="each output token's logprob")
    top_logprobs: int | None = Field(
        None, ge=0, le=MAX_TOP_LOGPROBS,
        description="most likely tokens to list at each place; needs logprobs: true")

    @field_validator("top_logprobs")
    @classmethod
    def _needs_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs: true")
        return value

    def sampling_fields(self) -> dict[str, Any]:
        """These options as deployments.core.generation.SamplingParams keywords."""
        return {**self.choice_fields(), "logprobs": bool(self.logprobs),
                "top_logprobs": self.top_logprobs or 0}
