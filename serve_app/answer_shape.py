"""What a chat asks its answer to be: free text, JSON matching a schema, or tool calls; the
grammar the engine must enforce for it, the tools its prompt offers, and how the answer is
read back (serve_app/tool_calls.py).

Every schema is checked here, before any work (deployments/core/json_grammar.py): one the
grammar cannot enforce is a 400 naming where it is. Tool choices follow OpenAI's and vLLM's
server:
- "none" (the default without tools): the tools are not offered; free text.
- "auto" (the default with tools): the tools are offered through the chat template and the
  model's own answer is parsed for calls (Hermes <tool_call> tags); a response_format still
  constrains that answer.
- "required": the answer is a JSON array of one or more {"name", "parameters"} objects, one
  of the tools each (at most one when parallel_tool_calls is false), enforced by the grammar.
- a named function: the answer is that function's arguments, enforced by its parameters.
A forced choice (required, named) wins over response_format: the answer is the calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from deployments.core.errors import InvalidRequest
from deployments.core.json_grammar import JSON_OBJECT_SCHEMA, checked_schema
from serve_app.protocol import ChatCompletionRequest, NamedToolChoice, Tool

Reading = Literal["text", "auto", "required", "named"]
# What a function without parameters takes: an object with none.
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class AnswerShape:
    json_schema: str | None = None  # what the engine's grammar enforces; None: nothing
    tools: str | None = None  # the function tools the prompt offers (JSON text)
    reading: Reading = "text"
    tool_name: str | None = None  # the named choice's function


def answer_shape(body: ChatCompletionRequest) -> AnswerShape:
    """The request's shape; InvalidRequest for a schema the grammar cannot enforce or a tool
    choice that does not fit its tools."""
    tools = body.tools or []
    parameters = _checked_parameters(tools)
    choice = body.tool_choice or ("auto" if tools else "none")
    if choice != "none" and not tools:
        raise InvalidRequest("tool_choice needs tools: none were given", "tool_choice")
    if choice == "none":
        return AnswerShape(json_schema=_response_schema(body))
    offered = json.dumps([tool.model_dump(exclude_none=True) for tool in tools])
    if isinstance(choice, NamedToolChoice):
        name = choice.function.name
        if name not in parameters:
            raise InvalidRequest(f"tool_choice names {name!r}, which is not one of the tools",
                                 "tool_choice")
        return AnswerShape(_compact(parameters[name]), offered, "named", name)
    if choice == "required":
        schema = calls_schema(parameters, body.parallel_tool_calls)
        return AnswerShape(_compact(schema), offered, "required")
    return AnswerShape(_response_schema(body), offered, "auto")


def calls_schema(parameters: dict[str, dict], parallel: bool = True) -> dict[str, Any]:
    """vLLM's schema of required tool calls: an array of {"name", "parameters"} objects, one
    of the tools each, their $defs gathered at the top; closed to other keys, which vLLM's
    leaves open (a model may add keys after the parameters until max_tokens)."""
    defs: dict[str, Any] = {}
    items = []
    for name, schema in parameters.items():
        schema = dict(schema)
        for key, definition in (schema.pop("$defs", None) or {}).items():
            if defs.setdefault(key, definition) != definition:
                raise InvalidRequest(f"tools define $defs {key!r} twice, differently", "tools")
        items.append({"properties": {"name": {"type": "string", "enum": [name]},
                                     "parameters": schema},
                      "required": ["name", "parameters"], "additionalProperties": False})
    array: dict[str, Any] = {"type": "array", "minItems": 1,
                             "items": {"type": "object", "anyOf": items}}
    if not parallel:
        array["maxItems"] = 1
    if defs:
        array["$defs"] = defs
    return array


def _checked_parameters(tools: list[Tool]) -> dict[str, dict]:
    """Each tool's parameters schema by name, each checked."""
    parameters: dict[str, dict] = {}
    for index, tool in enumerate(tools):
        name = tool.function.name
        if name in parameters:
            raise InvalidRequest(f"two tools are named {name!r}", f"tools[{index}]")
        schema = tool.function.parameters or NO_PARAMETERS
        checked_schema(schema, f"tools[{index}].function.parameters")
        parameters[name] = schema
    return parameters


def _response_schema(body: ChatCompletionRequest) -> str | None:
    response_format = body.response_format
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return JSON_OBJECT_SCHEMA
    if response_format.json_schema is None or response_format.json_schema.json_schema is None:
        raise InvalidRequest("response_format json_schema needs json_schema.schema",
                             "response_format.json_schema.schema")
    return checked_schema(response_format.json_schema.json_schema,
                          "response_format.json_schema.schema")


def _compact(schema: dict[str, Any]) -> str:
    return checked_schema(schema, "tools")
