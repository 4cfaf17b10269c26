"""A chat answer's text read back as OpenAI's message: its content, its tool calls.

A reader takes the answer's text piece by piece as the engine streams it and gives back
OpenAI's deltas (`{"content": ...}` or `{"tool_calls": [...]}`); a whole answer is the same
deltas put together (`whole_message`), so whole and streamed answers agree. By the answer's
shape (serve_app/answer_shape.py):
- text: every piece is content.
- named: the text is the function's arguments: the first delta has the call's id, its name
  and the first piece of its arguments, each delta after it more of them.
- required: the text is a JSON array of {"name", "parameters"}: each call's id and name come
  as soon as its name is complete, then its parameters as they arrive.
- auto: the model's own text, with calls in Hermes tags, <tool_call>{"name": ...,
  "arguments": {...}}</tool_call> (a list inside one pair is several calls); text outside
  them is content; each call comes whole once its closing tag does (or the answer ends);
  a call that does not parse stays content, as the model wrote it.
A call's `arguments` is always JSON text, as OpenAI sends it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from serve_app.answer_shape import AnswerShape

Delta = dict[str, Any]
OPEN, CLOSE = "<tool_call>", "</tool_call>"
# The start of a required call up to its parameters: {"name":"...","parameters":
CALL_HEAD = re.compile(r'\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"parameters"\s*:\s*')


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


class TextReader:
    calls = 0

    def feed(self, text: str) -> list[Delta]:
        return [{"content": text}]

    def finish(self) -> list[Delta]:
        return []


class NamedCallReader:
    """The text is one call's arguments."""

    def __init__(self, name: str, new_id: Callable[[], str] = new_call_id) -> None:
        self.name, self.new_id, self.calls = name, new_id, 0

    def feed(self, text: str) -> list[Delta]:
        if not text:
            return []
        if self.calls:
            return [_arguments(0, text)]
        self.calls = 1
        return [_call_head(0, self.new_id(), self.name, text)]

    def finish(self) -> list[Delta]:
        return []


class JsonDepth:
    """The nesting depth of JSON text read a character at a time (strings skipped)."""

    def __init__(self) -> None:
        self.depth, self.in_string, self.escaped = 0, False, False

    def step(self, char: str) -> int:
        if self.in_string:
            if self.escaped:
                self.escaped = False
            elif char == "\\":
                self.escaped = True
            elif char == '"':
                self.in_string = False
        elif char == '"':
            self.in_string = True
        elif char in "[{":
            self.depth += 1
        elif char in "]}":
            self.depth -= 1
        return self.depth


class RequiredCallsReader:
    """The text is a JSON array of {"name", "parameters"} objects."""

    def __init__(self, new_id: Callable[[], str] = new_call_id) -> None:
        self.new_id = new_id
        self.text, self.json = "", JsonDepth()
        self.calls = 0
        self.item_start: int | None = None  # where the call being read opened
        self.args_start: int | None = None  # where its parameters start, once its name is read
        self.args_end: int | None = None  # where they end, once they have
        self.sent = 0  # of the text, what is in deltas already

    def feed(self, text: str) -> list[Delta]:
        deltas: list[Delta] = []
        start, self.text = len(self.text), self.text + text
        for i in range(start, len(self.text)):
            before, after = self.json.depth, self.json.step(self.text[i])
            if before == 1 and after == 2:
                self.item_start, self.args_start, self.args_end = i, None, None
            if self.item_start is None:
                continue
            if self.args_start is None:
                deltas += self._head(i + 1)
            elif self.args_end is None and before >= 3 and after == 2:
                self.args_end = i + 1
            if before == 2 and after == 1:
                deltas += self._item_closed(i + 1)
        if self.item_start is not None and self.args_start is not None:
            deltas += self._arguments(self.args_end or len(self.text))
        return deltas

    def finish(self) -> list[Delta]:
        if self.calls == 0 and self.text.strip():  # not the array it should be
            return [{"content": self.text}]
        return []

    def _head(self, end: int) -> list[Delta]:
        head = CALL_HEAD.match(self.text, self.item_start, end)
        if head is None or head.end() != end:
            return []
        self.args_start = self.sent = end
        self.calls += 1
        return [_call_head(self.calls - 1, self.new_id(), json.loads(head.group(1)))]

    def _arguments(self, end: int) -> list[Delta]:
        piece, self.sent = self.text[self.sent:end], max(self.sent, end)
        return [_arguments(self.calls - 1, piece)] if piece else []

    def _item_closed(self, end: int) -> list[Delta]:
        """A call complete: the rest of its parameters, or all of it at once when its
        parameters came before its name."""
        if self.args_start is not None:
            deltas = self._arguments(self.args_end or end - 1)
        else:
            deltas = self._whole_item(self.text[self.item_start:end])
        self.item_start = None
        self.sent = end
        return deltas

    def _whole_item(self, text: str) -> list[Delta]:
        try:
            item = json.loads(text)
            name, arguments = item["name"], json.dumps(item.get("parameters", {}))
        except (ValueError, KeyError, TypeError):
            return [{"content": text}]
        self.calls += 1
        return [_call_head(self.calls - 1, self.new_id(), name, arguments)]


class HermesReader:
    """The model's own text, its calls in <tool_call> tags."""

    def __init__(self, new_id: Callable[[], str] = new_call_id) -> None:
        self.new_id = new_id
        self.pending, self.inside, self.calls = "", False, 0

    def feed(self, text: str) -> list[Delta]:
        self.pending += text
        deltas: list[Delta] = []
        while True:
            tag = CLOSE if self.inside else OPEN
            found = self.pending.find(tag)
            if found < 0:
                break
            before, self.pending = self.pending[:found], self.pending[found + len(tag):]
            deltas += self._calls(before) if self.inside else self._content(before)
            self.inside = not self.inside
        if not self.inside:  # all but what may be the start of a tag
            keep = _partial_tag(self.pending)
            deltas += self._content(self.pending[:len(self.pending) - keep])
            self.pending = self.pending[len(self.pending) - keep:]
        return deltas

    def finish(self) -> list[Delta]:
        rest, self.pending = self.pending, ""
        return self._calls(rest) if self.inside else self._content(rest)

    def _content(self, text: str) -> list[Delta]:
        """Text outside the tags; only whitespace between or after calls is left out."""
        return [] if self.calls and not text.strip() else _content(text)

    def _calls(self, body: str) -> list[Delta]:
        try:
            found = json.loads(body)
            calls = found if isinstance(found, list) else [found]
            parsed = [(c["name"], json.dumps(c.get("arguments", c.get("parameters", {}))))
                      for c in calls]
            if not all(isinstance(name, str) for name, _ in parsed):
                raise TypeError("a call's name is not a string")
        except (ValueError, KeyError, TypeError):
            return _content(f"{OPEN}{body}{CLOSE}")
        deltas = []
        for name, arguments in parsed:
            deltas.append(_call_head(self.calls, self.new_id(), name, arguments))
            self.calls += 1
        return deltas


AnswerReader = TextReader | NamedCallReader | RequiredCallsReader | HermesReader


def reader_for(shape: AnswerShape) -> AnswerReader:
    if shape.reading == "named":
        return NamedCallReader(shape.tool_name or "")
    if shape.reading == "required":
        return RequiredCallsReader()
    if shape.reading == "auto":
        return HermesReader()
    return TextReader()


def whole_message(reader: AnswerReader, text: str) -> dict[str, Any]:
    """An answer's message, read in one piece."""
    return assemble([*reader.feed(text), *reader.finish()])


def assemble(deltas: list[Delta]) -> dict[str, Any]:
    """OpenAI's assistant message from its deltas, as the client's stream helpers build it."""
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        content.append(delta.get("content") or "")
        for part in delta.get("tool_calls", ()):
            call = calls.setdefault(part["index"], {"id": None, "type": "function",
                                                    "function": {"name": "", "arguments": ""}})
            call["id"] = part.get("id") or call["id"]
            function = part.get("function", {})
            call["function"]["name"] += function.get("name") or ""
            call["function"]["arguments"] += function.get("arguments") or ""
    text = "".join(content)
    message: dict[str, Any] = {"role": "assistant",
                               "content": text if text.strip() or not calls else None}
    if calls:
        message["tool_calls"] = [calls[index] for index in sorted(calls)]
    return message


def finish_reason(reader: AnswerReader, engine_reason: str) -> str:
    """"tool_calls" for an answer that called a tool and ended on its own."""
    return "tool_calls" if reader.calls and engine_reason == "stop" else engine_reason


def _call_head(index: int, call_id: str, name: str, arguments: str = "") -> Delta:
    return {"tool_calls": [{"index": index, "id": call_id, "type": "function",
                            "function": {"name": name, "arguments": arguments}}]}


def _arguments(index: int, piece: str) -> Delta:
    return {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}


def _content(text: str) -> list[Delta]:
    return [{"content": text}] if text else []


def _partial_tag(text: str) -> int:
    """How many characters at the end of `text` could begin the opening tag."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0
