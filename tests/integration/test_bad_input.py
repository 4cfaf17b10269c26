"""Bad input: a JSON error with the right status, and the replicas keep serving."""

from __future__ import annotations

import base64

import pytest

from tests.media import b64, png_image, speech_wav

pytestmark = pytest.mark.integration
CHAT = {"model": "smollm2-135m-instruct", "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": "Hi"}]}


def assert_error(response, status: int, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status and fragment in error["message"]


def good_requests_still_work(client) -> None:
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    image = {"model": "clip-vit-b-32-image", "input": b64(png_image())}
    assert client.post("/v1/embeddings", json=image).status_code == 200
    audio = client.post("/v1/audio/transcriptions", data={"model": "whisper-base"},
                        files={"file": ("a.wav", speech_wav(), "audio/wav")})
    assert audio.status_code == 200


BAD_JSON_CASES = [
    ("/v1/chat/completions", b"{not json", 400, "not valid JSON"),
    ("/v1/chat/completions", b"[1, 2]", 400, "JSON object"),
    ("/v1/embeddings", b'{"model": "clip-vit-b-32"}', 400, "input"),
    ("/v1/pipeline", b'{"image": "***not base64***"}', 400, "base64"),
]


@pytest.mark.parametrize(("route", "payload", "status", "fragment"), BAD_JSON_CASES)
def test_malformed_bodies_are_400(client, route, payload, status, fragment):
    response = client.post(route, content=payload, headers={"content-type": "application/json"})
    assert_error(response, status, fragment)
    good_requests_still_work(client)


@pytest.mark.parametrize("field", [{"temperature": 5}, {"max_tokens": 0}, {"messages": []},
                                   {"top_p": 0}, {"max_tokens": 100000}, {"n": 9}])
def test_bad_chat_fields_are_400(client, field):
    assert_error(client.post("/v1/chat/completions", json={**CHAT, **field}), 400)
    good_requests_still_work(client)


def test_oversized_body_is_413(client):
    huge = {"model": "clip-vit-b-32-image", "input": "A" * (3 * 1024 * 1024)}
    assert_error(client.post("/v1/embeddings", json=huge), 413, "larger than")
    good_requests_still_work(client)


def test_unsupported_media_is_415(client):
    assert_error(client.post("/v1/chat/completions", content=b"hello",
                             headers={"content-type": "text/plain"}), 415)
    assert_error(client.post("/v1/audio/transcriptions", json={"model": "whisper-base"}), 415)
    upload = client.post("/v1/audio/transcriptions", data={"model": "whisper-base"},
                         files={"file": ("a.png", png_image(), "image/png")})
    assert_error(upload, 415, "image/png")
    good_requests_still_work(client)


def test_media_outside_the_allow_lists_is_415_naming_its_format(client):
    import io

    import av
    from PIL import Image

    tiff = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiff, format="TIFF")
    image = client.post("/v1/embeddings", json={"model": "clip-vit-b-32-image",
                                                "input": [b64(png_image()),
                                                          b64(tiff.getvalue())]})
    assert_error(image, 415, "input 1: the image is TIFF")
    with av.open(io.BytesIO(speech_wav())) as source:  # the same speech, as AIFF
        aiff = io.BytesIO()
        with av.open(aiff, "w", format="aiff") as out:
            stream = out.add_stream("pcm_s16be", rate=source.streams.audio[0].rate,
                                    layout="mono")
            for frame in source.decode(source.streams.audio[0]):
                frame.pts = None
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    audio = client.post("/v1/audio/transcriptions", data={"model": "whisper-base"},
                        files={"file": ("a.aiff", aiff.getvalue(), "audio/aiff")})
    assert_error(audio, 415, "The audio is aiff")
    good_requests_still_work(client)


def test_undecodable_audio_and_image_are_422(client):
    garbage = base64.b64encode(b"\x00\x01garbage" * 50).decode()
    audio = client.post("/v1/audio/transcriptions", data={"model": "whisper-base"},
                        files={"file": ("a.wav", b"RIFF....garbage" * 20, "audio/wav")})
    assert_error(audio, 422)
    image = client.post("/v1/embeddings", json={"model": "clip-vit-b-32-image",
                                                "input": [b64(png_image()), garbage]})
    assert_error(image, 422, "input 1")
    pipeline = client.post("/v1/pipeline", json={"audio": garbage, "image": b64(png_image())})
    assert_error(pipeline, 422)
    good_requests_still_work(client)


def test_unknown_model_and_route_are_404(client):
    assert_error(client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-9"}), 404,
                 "gpt-9")
    assert_error(client.post("/v1/embeddings", json={"model": "nope", "input": "x"}), 404)
    assert_error(client.get("/v1/nothing-here"), 404)
    assert_error(client.get("/v1/chat/completions"), 405)
    good_requests_still_work(client)


def test_bad_transcription_options_are_400(client):
    def post(**data):
        return client.post("/v1/audio/transcriptions", data={"model": "whisper-base", **data},
                           files={"file": ("a.wav", speech_wav(), "audio/wav")})

    assert_error(post(response_format="docx"), 400, "response_format")
    assert_error(post(language="xx"), 400, "language")
    assert_error(client.post("/v1/audio/transcriptions", data={"model": "whisper-base"},
                             files={"other": ("a.wav", b"x", "audio/wav")}), 400, "file")
    good_requests_still_work(client)
