"""Prompt token ids: chat messages through the model's own chat template, or a plain prompt
(/v1/completions) as it is."""

from __future__ import annotations

from typing import Any


def chat_token_ids(tokenizer: Any, messages: list[dict]) -> list[int]:
    """Token ids of `messages` rendered by a Hugging Face tokenizer's chat template."""
    encoded = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return list(encoded["input_ids"])


def text_token_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a plain prompt, with the special tokens the tokenizer adds (a BOS)."""
    return list(tokenizer.encode(text))
