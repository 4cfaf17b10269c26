"""A text engine that is another server: vLLM's own OpenAI server, reached over HTTP, as the
FastAPI server of a team that runs `vllm serve` calls it for its pipeline route.

It answers the TextEngine contract (deployments/engines/text_base.py) so the threadpool
server's text replica serves its pipeline's LLM stage through it: the chat is rendered to
token ids here with the model's own chat template (the tokenizer of the same model folder
the vLLM server loads) and sent to `/v1/completions` as a token-id prompt, so the vLLM server
sees the same prompt tokens it would render from the messages itself. Streams are read as
server-sent events; leaving one early closes the connection, which makes vLLM abort it. The
objective is not sent: the server orders its own queue, as it would for that team.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from deployments.core.deadline import remaining
from deployments.core.errors import InvalidRequest, Unavailable
from deployments.core.fair_share import ANONYMOUS, Share
from deployments.core.generation import Completion, SamplingParams, StreamDelta
from deployments.engines.chat import chat_token_ids, text_token_ids

COMPLETIONS = "/v1/completions"


def completion_body(model: str, prompt: list[int], params: SamplingParams,
                    stream: bool) -> dict[str, Any]:
    """The `/v1/completions` request for one prompt of token ids."""
    body: dict[str, Any] = {"model": model, "prompt": prompt, "max_tokens": params.max_tokens,
                            "temperature": max(params.temperature, 0.0), "top_p": params.top_p,
                            "stream": stream}
    if params.seed is not None:
        body["seed"] = params.seed
    if params.stop:
        body["stop"] = list(params.stop)
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def completion_of(payload: dict[str, Any], text: str | None = None) -> Completion:
    """A Completion from an answer's (or a stream's last events') choice and usage."""
    choice = (payload.get("choices") or [{}])[0]
    usage = payload.get("usage") or {}
    return Completion(choice.get("text", "") if text is None else text,
                      usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                      choice.get("finish_reason") or "length")


def sse_data(line: bytes) -> str | None:
    """The data of one server-sent event line, None for other lines."""
    text = line.decode(errors="replace").strip()
    return text[5:].strip() if text.startswith("data:") else None


class OpenAITextEngine:
    """TextEngine over an OpenAI-compatible completions server (`base_url`) serving `model`."""

    batches_itself = True  # the server batches; every request goes straight to it
    # Nor objective nor class nor tenant is sent: the server's own order, arrival by default.
    by_objective = by_class = by_fair_share = False

    def __init__(self, base_url: str, model: str, tokenizer: Any) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.tokenizer = tokenizer
        self.counts = {"completed": 0, "aborted": 0, "rejected": 0}
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_model_folder(cls, base_url: str, model: str, folder: str) -> OpenAITextEngine:
        from transformers import AutoTokenizer

        return cls(base_url, model, AutoTokenizer.from_pretrained(folder))

    def encode_chat(self, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
        return chat_token_ids(self.tokenizer, messages, tools)

    def encode_text(self, prompt: str) -> list[int]:
        return text_token_ids(self.tokenizer, prompt)

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._session

    async def generate(self, prompt: list[int], params: SamplingParams,
                       deadline: float | None = None, objective: float | None = None,
                       share: Share = ANONYMOUS) -> Completion:
        body = completion_body(self.model, prompt, params, stream=False)
        async with self._post(body, deadline) as response:
            payload = await self._checked(response)
        self.counts["completed"] += 1
        return completion_of(payload)

    async def stream(self, prompt: list[int], params: SamplingParams,
                     deadline: float | None = None, objective: float | None = None,
                     share: Share = ANONYMOUS) -> AsyncIterator[StreamDelta]:
        body = completion_body(self.model, prompt, params, stream=True)
        text: list[str] = []
        last: dict[str, Any] = {}
        outcome = "aborted"
        try:
            async with self._post(body, deadline) as response:
                if response.status != 200:
                    await self._checked(response)
                async for line in response.content:
                    data = sse_data(line)
                    if data is None:
                        continue
                    if data == "[DONE]":
                        break
                    event = json.loads(data)
                    piece = (event.get("choices") or [{}])[0]
                    if piece.get("text"):
                        text.append(piece["text"])
                        yield StreamDelta(piece["text"])
                    if piece.get("finish_reason"):
                        last["choices"] = [piece]
                    if event.get("usage"):
                        last["usage"] = event["usage"]
            outcome = "completed"
            yield StreamDelta("", completion_of(last, "".join(text)))
        finally:
            self.counts[outcome] += 1

    def _post(self, body: dict[str, Any], deadline: float | None):
        left = remaining(deadline)
        return self.session().post(self.base_url + COMPLETIONS, json=body,
                                   timeout=aiohttp.ClientTimeout(
                                       total=None if left is None else max(left, 0.001)))

    async def _checked(self, response: aiohttp.ClientResponse) -> dict[str, Any]:
        text = await response.text()
        if response.status == 400:
            self.counts["rejected"] += 1
            raise InvalidRequest(f"the text server refused the prompt: {text[:300]}",
                                 "messages")
        if response.status != 200:
            raise Unavailable(f"the text server answered {response.status}: {text[:300]}",
                              retry_after_s=1)
        return json.loads(text)

    def stats(self) -> dict[str, int]:
        return dict(self.counts)

    async def check_health(self) -> None:
        async with self.session().get(self.base_url + "/health",
                                      timeout=aiohttp.ClientTimeout(total=10)) as response:
            if response.status != 200:
                raise Unavailable(f"the text server's /health answered {response.status}",
                                  retry_after_s=1)
