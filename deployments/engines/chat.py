"""Chat messages to prompt token ids with the model's own chat template."""

from __future__ import annotations

from typing import Any


def chat_token_ids(tokenizer: Any, messages: list[dict]) -> list[int]:
    """Token ids of `messages` rendered by a Hugging Face tokenizer's chat template."""
    encoded = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return list(encoded["input_ids"])
