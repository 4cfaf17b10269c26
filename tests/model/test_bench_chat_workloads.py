"""The bench's multi-turn and multimodal-chat workloads: the requests they build, checked
against the shapes the front end accepts (protocol, limits, the pipeline's media decoding)."""

from __future__ import annotations

import base64
import io
import pickle
import random
import wave

import pytest

from bench.speech import SpeechClip
from bench.workloads import build_workload
from deployments.core.config import AppConfig
from serve_app import limits
from serve_app.pipeline import decode_media
from serve_app.protocol import ChatCompletionRequest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def accepted(body: dict) -> ChatCompletionRequest:
    """The body as the front end parses and checks it before any model sees it."""
    request = ChatCompletionRequest.model_validate(body)
    limits.check_chat(request, AppConfig())
    return request


def conversation(workload, rng: random.Random, requests: int) -> list[list[dict]]:
    return [workload.next_request(rng).json["messages"] for _ in range(requests)]


def test_each_turn_carries_the_shared_system_prompt_and_every_earlier_turn():
    workload = build_workload("multi-turn", {"turns": 3, "system_prompt_len": 300,
                                             "prompt_len": "40", "output_len": "12"})
    turns = conversation(workload, random.Random(0), 4)
    assert [len(messages) for messages in turns] == [2, 4, 6, 2]  # then a new conversation
    system = turns[0][0]
    assert system["role"] == "system" and len(system["content"].split()) == 300
    assert all(messages[0] == system for messages in turns)
    for earlier, later in zip(turns, turns[1:3]):
        assert later[:len(earlier)] == earlier  # the same prefix, so a cache can reuse it
        assert [m["role"] for m in later[len(earlier):]] == ["assistant", "user"]
    assert len(turns[1][2]["content"].split()) == 12  # the synthetic answer: max_tokens words
    assert len(turns[0][1]["content"].split()) == 40
    assert turns[3][1] != turns[0][1]
    other_client = conversation(workload, random.Random(1), 1)[0]
    assert other_client[0] == system and other_client[1] != turns[0][1]
    for messages in turns:
        accepted({"model": "smollm2-135m-instruct", "messages": messages})


def test_with_its_own_context_each_conversation_keeps_one_system_prompt_shared_by_no_other():
    workload = build_workload("multi-turn", {"turns": 2, "context": "own"})
    loops = [random.Random(seed) for seed in (1, 2)]
    systems = [[workload.next_request(rng).json["messages"][0]["content"] for _ in range(4)]
               for rng in loops]
    for first, second, third, fourth in systems:  # two conversations of two turns per loop
        assert first == second and third == fourth and first != third
    assert not set(systems[0]) & set(systems[1])
    with pytest.raises(ValueError):
        build_workload("multi-turn", {"context": "mine"})


def test_multi_turn_requests_are_streamed_seeded_and_reproducible():
    def first_requests(seed: int):
        workload = build_workload("multi-turn", {"turns": 2, "seed": seed})
        rng = random.Random(seed)
        return [workload.next_request(rng) for _ in range(3)]

    specs = first_requests(5)
    assert all(s.route == "multi-turn" and s.stream and s.path == "/v1/chat/completions"
               for s in specs)
    assert specs[0].json["stream_options"] == {"include_usage": True}
    assert [s.json for s in specs] == [s.json for s in first_requests(5)]
    unstreamed = build_workload("multi-turn", {"stream": False}).next_request(random.Random(0))
    assert not unstreamed.stream and "stream_options" not in unstreamed.json
    with pytest.raises(ValueError, match="turns"):
        build_workload("multi-turn", {"turns": 0})


def test_a_pickled_multi_turn_workload_starts_its_conversations_afresh():
    workload = build_workload("multi-turn", {"turns": 3})
    rng = random.Random(0)
    workload.next_request(rng)
    copy = pickle.loads(pickle.dumps(workload))  # as it reaches a client actor
    assert len(copy.next_request(random.Random(0)).json["messages"]) == 2
    assert len(workload.next_request(rng).json["messages"]) == 4


def test_the_cli_takes_the_multi_turn_and_media_options():
    from bench.cli import parser, workload_of

    args = parser().parse_args(["run", "--url", "http://x", "--workload", "multi-turn",
                                "--turns", "6", "--system-prompt-len", "350"])
    workload = workload_of(args)
    assert (workload.turns, workload.system_prompt_len) == (6, 350)
    args = parser().parse_args(["run", "--url", "http://x", "--workload", "multimodal-chat",
                                "--media", "image", "--no-stream"])
    assert workload_of(args).describe()["media"] == "image"
    mixed = build_workload("mixed", {"mix": "multi-turn=1,multimodal-chat=1", "media": "image"})
    assert set(mixed.describe()["mix"]) == {"multi-turn", "multimodal-chat"}


def silent_clip(seconds: float = 0.5) -> SpeechClip:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes(b"\0\0" * int(16000 * seconds))
    return SpeechClip("", buffer.getvalue(), seconds)


@pytest.mark.parametrize("media, kinds", [("image", ["image"]), ("audio", ["audio"]),
                                          ("both", ["image", "audio"])])
def test_multimodal_chat_sends_text_with_image_and_audio_parts(media, kinds):
    from bench.workloads.multimodal_chat import MultimodalChatWorkload

    workload = MultimodalChatWorkload(media, clips=[silent_clip()], image_size=64)
    spec = workload.next_request(random.Random(0))
    assert spec.route == "multimodal-chat" and spec.path == "/v1/chat/completions"
    assert spec.stream and spec.json["stream_options"] == {"include_usage": True}
    [message] = spec.json["messages"]
    assert message["role"] == "user" and message["content"][0]["type"] == "text"
    request = accepted(spec.json)
    parts = request.media()
    assert [part.kind for part in parts] == kinds
    for part in parts:
        data = decode_media(part)  # what the pipeline decodes before any stage runs
        if part.kind == "image":
            assert part.data.startswith("data:image/png;base64,")
            assert data.startswith(PNG_SIGNATURE)
        else:
            assert data == workload.clips[0].wav and data.startswith(b"RIFF")
    audio = [p for p in message["content"] if p["type"] == "input_audio"]
    assert all(p["input_audio"]["format"] == "wav" for p in audio)


def test_multimodal_chat_images_are_seeded_and_the_media_option_is_checked():
    from bench.workloads.multimodal_chat import MultimodalChatWorkload

    a = MultimodalChatWorkload("image", seed=3, image_size=64)
    assert a.images == MultimodalChatWorkload("image", seed=3, image_size=64).images
    assert len(set(a.images)) == len(a.images) and not a.clips
    raw = base64.b64decode(a.images[0].split(",", 1)[1])
    assert raw.startswith(PNG_SIGNATURE)
    whole = build_workload("multimodal-chat", {"media": "image", "stream": False,
                                               "image_size": 64})
    spec = whole.next_request(random.Random(0))
    assert not spec.stream and "stream_options" not in spec.json
    with pytest.raises(ValueError, match="media"):
        MultimodalChatWorkload("video")
