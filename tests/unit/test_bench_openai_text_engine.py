"""The peer threadpool server's text engine: prompts as token ids to an OpenAI completions
server, answers whole or streamed back as Completions and deltas. The server here is a small
stand-in speaking the completions API's wire format (vLLM's own is exercised by the peer
stack's smoke run)."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from bench.openai_text_engine import OpenAITextEngine, completion_body, sse_data
from deployments.core.errors import InvalidRequest
from deployments.core.generation import SamplingParams


class Tokenizer:
    def apply_chat_template(self, messages, **options):
        return {"input_ids": [len(m["content"]) for m in messages]}


def completions_app(seen: list[dict]) -> web.Application:
    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.append(body)
        if body["prompt"] == [0]:
            return web.json_response({"error": {"message": "empty prompt"}}, status=400)
        if not body["stream"]:
            return web.json_response({"choices": [{"text": "hello world",
                                                   "finish_reason": "stop"}],
                                      "usage": {"prompt_tokens": 2, "completion_tokens": 2}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = [{"choices": [{"text": "hello", "finish_reason": None}]},
                  {"choices": [{"text": " world", "finish_reason": "length"}]},
                  {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2}}]
        for event in events:
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    return app


async def with_server(check) -> list[dict]:
    seen: list[dict] = []
    runner = web.AppRunner(completions_app(seen))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    engine = OpenAITextEngine(f"http://127.0.0.1:{port}", "smol", Tokenizer())
    try:
        await check(engine)
    finally:
        await engine.session().close()
        await runner.cleanup()
    return seen


def test_a_whole_answer_and_a_stream_come_back_as_the_replica_expects():
    params = SamplingParams(max_tokens=5, temperature=0.0, seed=7)

    async def check(engine: OpenAITextEngine) -> None:
        prompt = engine.encode_chat([{"role": "user", "content": "abc"}])
        assert prompt == [3]
        whole = await engine.generate(prompt, params)
        assert (whole.text, whole.prompt_tokens, whole.completion_tokens,
                whole.finish_reason) == ("hello world", 2, 2, "stop")
        deltas = [d async for d in engine.stream(prompt, params)]
        assert [d.text for d in deltas] == ["hello", " world", ""]
        last = deltas[-1].completion
        assert (last.text, last.completion_tokens, last.finish_reason) == (
            "hello world", 2, "length")
        assert engine.stats()["completed"] == 2

    seen = asyncio.run(with_server(check))
    assert seen[0] == {"model": "smol", "prompt": [3], "max_tokens": 5, "temperature": 0.0,
                       "top_p": 1.0, "stream": False, "seed": 7}
    assert seen[1]["stream_options"] == {"include_usage": True}


def test_a_refused_prompt_is_a_client_error():
    async def check(engine: OpenAITextEngine) -> None:
        with pytest.raises(InvalidRequest, match="refused"):
            await engine.generate([0], SamplingParams())

    asyncio.run(with_server(check))


def test_request_bodies_and_event_lines():
    body = completion_body("m", [1, 2], SamplingParams(stop=("\n",)), stream=True)
    assert body["stop"] == ["\n"] and "seed" not in body
    assert sse_data(b"data: {}\n") == "{}"
    assert sse_data(b": keep-alive\n") is None
