"""The worst case of every per-request cap, all at once: each gets its JSON error naming the
field, no replica's memory passes its cap, and every replica keeps serving.

Memory is read from /proc for each replica's process, found through Serve's own details: its
peak (VmHWM) is reset before the burst (clear_refs 5), so what is read after is the peak of the
burst itself, not of the model's loading.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest

from deployments.core.errors import ServeError
from serve_app.http_errors import status_of
from tests.conftest import TEST_ARGS, deployment_handle
from tests.hostile_media import flac_without_duration, jpeg, png, png_declaring, silent_wav
from tests.media import b64, png_image, speech_wav

pytestmark = pytest.mark.integration

MiB = 2**20
# How much each replica's RSS may rise during the burst, over what it held just before, in
# MiB. Measured on the test app (CPU profile, 2 cores) in the full suite, RSS before the burst
# -> peak during it, with every cap in place:
#   Ingress            173 ->  201  (bodies up to the 2 MiB limit, parsed and validated)
#   TextGenerator    1,405 -> 1,405 (every bad chat or prompt stops at the ingress; what it
#                                    holds before is what the session's earlier tests left)
#   ImageEmbedder    1,529 -> 1,657 (16 images at the 16.7 M pixel cap: one decoded whole at a
#                                    time, then shrunk to what CLIP sees)
#   SpeechTranscriber  389 ->  416
# Each allowance leaves room for allocator noise and is far below what the uncapped cases take
# (the 16 images held at full size for batching peaked 1,100 MiB higher before decoding went
# one at a time; the FLAC of 10 hours decodes to 6.4 GiB). Smaller ones (a 6000 x 6000 JPEG
# is 103 MiB of pixels) are caught by their 413, which only a check of the header before
# decoding can give for the PNG that declares 100,000 x 100,000.
RSS_RISE_MIB = {"Ingress": 250, "TextGenerator": 250, "ImageEmbedder": 400,
                "SpeechTranscriber": 250}
# And the peak itself, whatever came before: the working set measured above plus ~250 MiB.
RSS_CAP_MIB = {"Ingress": 450, "TextGenerator": 1650, "ImageEmbedder": 1900,
               "SpeechTranscriber": 650}
BODY_LIMIT = TEST_ARGS["ingress"]["max_body_bytes"]
CLIP, CLIP_IMAGE, WHISPER = "clip-vit-b-32", "clip-vit-b-32-image", "whisper-base"
CHAT = {"model": "smollm2-135m-instruct", "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": "Hi"}]}


@dataclass(frozen=True)
class Case:
    name: str
    route: str
    request: dict[str, Any]  # httpx.post keyword arguments
    status: int
    param: str | None
    expect: dict[str, Any] = field(default_factory=dict)  # what a 200's JSON must contain


def transcription(audio: bytes, name: str) -> dict[str, Any]:
    return {"data": {"model": WHISPER}, "files": {"file": (name, audio, "audio/wav")}}


def raw_json(content: bytes) -> dict[str, Any]:
    return {"content": content, "headers": {"content-type": "application/json"}}


def worst_cases() -> list[Case]:
    at_cap = png(4096, 4096)  # 16,777,216 pixels: exactly vision.max_image_pixels
    ten_hours = 10 * 3600
    return [
        Case("5,000 text inputs", "/v1/embeddings",
             {"json": {"model": CLIP, "input": ["a photo of a cat"] * 5000}}, 400, "input"),
        Case("5,000 image inputs", "/v1/embeddings",
             {"json": {"model": CLIP_IMAGE, "input": [b64(png(8, 8))] * 5000}}, 400, "input"),
        Case("texts of 100,000 characters", "/v1/embeddings",
             {"json": {"model": CLIP, "input": ["a cat", "b" * 100_000, "c" * 100_000]}},
             400, "input[1]"),
        Case("a PNG declaring 100,000 x 100,000 pixels", "/v1/embeddings",
             {"json": {"model": CLIP_IMAGE, "input": [b64(png_image()),
                                                      b64(png_declaring(100_000, 100_000))]}},
             413, "input[1]"),
        Case("a JPEG of 6,000 x 6,000 pixels", "/v1/embeddings",
             {"json": {"model": CLIP_IMAGE, "input": [b64(jpeg(6000, 6000))]}}, 413, "input[0]"),
        Case("16 images at the pixel cap", "/v1/embeddings",
             {"json": {"model": CLIP_IMAGE, "input": [b64(at_cap)] * 16}}, 200, None,
             {"object": "list"}),
        Case("a pipeline image declaring 100,000 x 100,000 pixels", "/v1/pipeline",
             {"json": {"image": b64(png_declaring(100_000, 100_000)), "max_tokens": 4}},
             413, "image"),
        Case("10,000 labels", "/v1/pipeline",
             {"json": {"image": b64(png_image()), "labels": ["cat"] * 10_000}}, 400, "labels"),
        Case("a label of 1 MB", "/v1/pipeline",
             {"json": {"image": b64(png_image()), "labels": ["cat", "d" * 1_000_000]}},
             400, "labels[1]"),
        Case("a WAV declaring 10 hours", "/v1/audio/transcriptions",
             transcription(silent_wav(ten_hours, rate=8), "ten-hours.wav"), 413, "file"),
        Case("a FLAC of 10 hours stating no duration", "/v1/audio/transcriptions",
             transcription(flac_without_duration(np.zeros(8 * ten_hours, np.int16), 8),
                           "ten-hours.flac"), 413, "file"),
        Case("a pipeline WAV declaring 10 hours", "/v1/pipeline",
             {"json": {"audio": b64(silent_wav(ten_hours, rate=8)), "max_tokens": 4}},
             413, "audio"),
        Case("a 25 MB body", "/v1/embeddings", raw_json(b"[" + b"1," * (12 * MiB) + b"1]"),
             413, None),
        Case("JSON nested 100,000 levels deep", "/v1/chat/completions",
             raw_json(b"[" * 100_000 + b"]" * 100_000), 400, None),
        Case("JSON nested 40 levels deep", "/v1/chat/completions",
             raw_json(json.dumps({**CHAT, "x": json.loads("[" * 40 + "]" * 40)}).encode()),
             400, None),
        Case("seed 2**80 in a chat", "/v1/chat/completions", {"json": {**CHAT, "seed": 2**80}},
             400, "seed"),
        Case("seed 2**80 in a pipeline", "/v1/pipeline",
             {"json": {"prompt": "Hi", "max_tokens": 4, "seed": 2**80}}, 400, "seed"),
        Case("a prompt as long as the body limit", "/v1/chat/completions",
             {"json": {**CHAT, "messages": [{"role": "user",
                                             "content": "e" * (BODY_LIMIT - 512)}]}},
             400, "messages"),
        Case("a pipeline prompt as long as the body limit", "/v1/pipeline",
             {"json": {"prompt": "f" * (BODY_LIMIT - 512), "max_tokens": 4}}, 400, "prompt"),
    ]


def test_the_worst_case_of_every_cap_at_once(app_url, ray_cluster):
    pids = replica_pids(ray_cluster)
    before = {name: rss_mib(pid, "VmRSS") for name, pid in pids.items()}
    for pid in pids.values():
        reset_peak_rss(pid)
    cases = worst_cases()
    with ThreadPoolExecutor(len(cases)) as pool:
        responses = list(pool.map(lambda case: send(app_url, case), cases))
    peaks = {name: rss_mib(pid, "VmHWM") for name, pid in pids.items()}
    print(f"\nRSS MiB before {before}\npeak during the burst {peaks}")

    wrong = [f"{case.name}: {problem}" for case, response in zip(cases, responses)
             if (problem := mismatch(case, response))]
    assert not wrong, "\n".join(wrong)
    over = {name: round(peak - before[name]) for name, peak in peaks.items()
            if peak - before[name] > RSS_RISE_MIB[name]}
    assert not over, f"RSS rose (MiB) past the allowances {RSS_RISE_MIB}: {over}"
    too_big = {name: peak for name, peak in peaks.items() if peak > RSS_CAP_MIB[name]}
    assert not too_big, f"peak RSS (MiB) over the caps {RSS_CAP_MIB}: {too_big}"
    assert replica_pids(ray_cluster) == pids, "a replica was replaced during the burst"
    every_replica_still_serves(app_url)


def test_replicas_enforce_their_caps_without_the_ingress(app_url):
    """Called straight through their handles, the replicas refuse the same worst cases."""
    vision, audio = deployment_handle("ImageEmbedder"), deployment_handle("SpeechTranscriber")
    bomb, good = png_declaring(100_000, 100_000), png_image()
    cases = [
        (vision.embed_images.remote([good, bomb]), 413, "input[1]"),
        (vision.embed_images.remote([jpeg(6000, 6000)]), 413, "input[0]"),
        (vision.classify.remote(bomb, ["cat"]), 413, "image"),
        (vision.classify.remote(good, ["cat"] * 10_000), 400, "labels"),
        (vision.classify.remote(good, ["cat", "d" * 1_000_000]), 400, "labels[1]"),
        (audio.transcribe.remote(silent_wav(10 * 3600, rate=8)), 413, "file"),
    ]
    for response, status, param in cases:
        with pytest.raises(ServeError) as caught:
            response.result(timeout_s=120)
        error = getattr(caught.value, "cause", None) or caught.value
        assert (status_of(error), error.param) == (status, param), error


def send(app_url: str, case: Case) -> httpx.Response:
    with httpx.Client(base_url=app_url, timeout=180) as http:
        return http.post(case.route, **case.request)


def mismatch(case: Case, response: httpx.Response) -> str | None:
    """What is wrong with the response to `case`, or None."""
    if response.status_code != case.status:
        return f"HTTP {response.status_code}, expected {case.status}: {response.text[:300]}"
    try:
        body = response.json()
    except ValueError:
        return f"not JSON: {response.text[:300]}"
    if case.status == 200:
        missing = {k: v for k, v in case.expect.items() if body.get(k) != v}
        return f"expected {missing} in the body" if missing else None
    error = body.get("error", {})
    if error.get("code") != case.status or error.get("param") != case.param:
        return f"error {error}, expected code {case.status} and param {case.param!r}"
    return None


def every_replica_still_serves(app_url: str) -> None:
    with httpx.Client(base_url=app_url, timeout=180) as http:
        chat = http.post("/v1/chat/completions", json=CHAT)
        assert chat.status_code == 200, chat.text
        texts = http.post("/v1/embeddings", json={"model": CLIP, "input": ["a cat", "a dog"]})
        assert texts.status_code == 200 and len(texts.json()["data"]) == 2, texts.text
        image = http.post("/v1/embeddings", json={"model": CLIP_IMAGE,
                                                  "input": b64(jpeg(640, 480))})
        assert image.status_code == 200, image.text
        speech = http.post("/v1/audio/transcriptions",
                           **transcription(speech_wav(), "speech.wav"))
        assert speech.status_code == 200 and "fox" in speech.json()["text"].lower(), speech.text
        pipeline = http.post("/v1/pipeline", json={"image": b64(png_image()), "max_tokens": 4,
                                                   "labels": ["a red circle", "a cat"]})
        assert pipeline.status_code == 200, pipeline.text


def replica_pids(ray_cluster) -> dict[str, int]:
    """{deployment: pid} of the test app's replicas (one each), from Serve's details."""
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    from tests.conftest import APP_NAME

    sdk = ServeSubmissionClient(f"http://127.0.0.1:{ray_cluster.ports['dashboard']}")
    deployments = sdk.get_serve_details()["applications"][APP_NAME]["deployments"]
    pids = {}
    for name, deployment in deployments.items():
        running = [r["pid"] for r in deployment["replicas"] if r["state"] == "RUNNING"]
        assert len(running) == 1, f"{name}: expected one running replica, got {running}"
        pids[name] = running[0]
    return pids


def rss_mib(pid: int, field_name: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of a process, in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field_name} in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> None:
    """Sets VmHWM back to the current RSS (Linux: 5 to /proc/PID/clear_refs)."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
