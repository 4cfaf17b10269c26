"""Function tools, tool calls and tool results in a chat prompt.

A chat template that renders tools gets them as Hugging Face documents it: `tools` beside the
messages, an assistant's `tool_calls` with their arguments as objects. A template that does
not (SmolLM2's, plain ChatML) gets plain messages in the Hermes convention, which the tool
call parser reads back (serve_app/tool_calls.py):
- the tools in the system message, one JSON object per line inside <tools></tools>, with how
  to call them;
- an assistant's calls as <tool_call>{"name": ..., "arguments": {...}}</tool_call> after its
  text;
- a tool's result as a user message <tool_response>...</tool_response>.
"""

from __future__ import annotations

import json
from typing import Any

TOOLS_PROMPT = (
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n"
    "<tools>\n{tools}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n"
    '<tool_call>\n{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>'
)


def for_tool_template(messages: list[dict]) -> list[dict]:
    """The messages as a tool-aware template takes them: calls' arguments as objects."""
    return [_with_argument_objects(m) if m.get("tool_calls") else m for m in messages]


def as_plain_messages(messages: list[dict], tools: list[dict] | None) -> list[dict]:
    """Role and text only, tools and calls written out (Hermes)."""
    plain = [_plain(message) for message in messages]
    if not tools:
        return plain
    offer = TOOLS_PROMPT.format(tools="\n".join(json.dumps(t) for t in tools))
    if plain and plain[0]["role"] == "system":
        return [{"role": "system", "content": f"{plain[0]['content']}\n\n{offer}"}, *plain[1:]]
    return [{"role": "system", "content": offer}, *plain]


def _plain(message: dict) -> dict[str, str]:
    content = message.get("content") or ""
    if message["role"] == "tool":
        return {"role": "user", "content": f"<tool_response>\n{content}\n</tool_response>"}
    calls = [f"<tool_call>\n{json.dumps(_call_object(call))}\n</tool_call>"
             for call in message.get("tool_calls") or ()]
    return {"role": message["role"], "content": "\n".join([content, *calls] if content
                                                          else calls) or content}


def _call_object(call: dict) -> dict[str, Any]:
    function = call.get("function", call)
    return {"name": function.get("name"), "arguments": _arguments(function.get("arguments"))}


def _with_argument_objects(message: dict) -> dict:
    calls = [{**call, "function": {**call["function"],
                                   "arguments": _arguments(call["function"].get("arguments"))}}
             for call in message["tool_calls"]]
    return {**message, "tool_calls": calls, "content": message.get("content") or ""}


def _arguments(arguments: Any) -> Any:
    """A call's arguments as an object when they are a JSON object's text; else as given."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments
