"""Prompt token ids: chat messages through the model's own chat template, or a plain prompt
(/v1/completions) as it is.

Tools, assistant tool calls and tool results go through the template itself when it renders
tools (it mentions `tools`, as Hermes, Qwen and Llama 3 templates do); otherwise they are
rendered as plain messages first (deployments/engines/tool_prompt.py).
"""

from __future__ import annotations

from typing import Any

from deployments.engines.tool_prompt import as_plain_messages, for_tool_template


def chat_token_ids(tokenizer: Any, messages: list[dict],
                   tools: list[dict] | None = None) -> list[int]:
    """Token ids of `messages` (and the function `tools` offered) rendered by a Hugging Face
    tokenizer's chat template."""
    extra: dict[str, Any] = {}
    if renders_tools(tokenizer):
        messages = for_tool_template(messages)
        if tools:
            extra["tools"] = tools
    else:
        messages = as_plain_messages(messages, tools)
    encoded = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, **extra
    )
    return list(encoded["input_ids"])


def text_token_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a plain prompt, with the special tokens the tokenizer adds (a BOS)."""
    return list(tokenizer.encode(text))


def renders_tools(tokenizer: Any) -> bool:
    template = getattr(tokenizer, "chat_template", None)
    return isinstance(template, str) and "tools" in template
