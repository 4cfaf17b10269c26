"""Hypothesis strategies for every route of the app: schema-shaped bodies whose fields are valid,
at an edge, just past it, or of the wrong type, plus raw bytes, broken multipart, deep nesting,
unknown routes and methods. Used by tests/system/test_fuzz.py (a fixed seed in CI) and by
`python -m bench fuzz` (thousands of requests against a running app).

Valid requests are kept cheap: a chat or pipeline body always names a small max_tokens (the
server's default would be 128 tokens), and audio that would be long to transcribe is either
over the cap or a lie in its header.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from bench.fuzz_media import MediaLimits, audio, b64, images

TEXT_MODEL, CLIP_MODEL, WHISPER_MODEL = "smollm2-135m-instruct", "clip-vit-b-32", "whisper-base"
ROLES = ("system", "user", "assistant", "developer", "tool")
TRANSCRIPTION_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
HUGE_INTS = (2**31, 2**31 - 1, 2**32, 2**63, 2**63 - 1, 2**64, 2**80, -(2**63) - 1, -(2**80),
             10**30)
ODD_FLOATS = (math.nan, math.inf, -math.inf, -0.0, 1e308, -1e308, 5e-324, 1e-9)
# Methods the app does not serve but HTTP servers parse; a made-up token such as FOO is refused
# by Serve's HTTP server (uvicorn's parser) with a plain 400 before the app sees it.
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "PROPFIND")
KNOWN_PATHS = ("/healthz", "/readyz", "/v1/models", "/v1/chat/completions", "/v1/completions",
               "/v1/embeddings", "/v1/audio/transcriptions", "/v1/audio/translations",
               "/v1/pipeline")
CONTENT_TYPES = ("application/json", "application/json; charset=utf-8", "text/plain",
                 "application/x-www-form-urlencoded", "multipart/form-data",
                 "application/octet-stream", "APPLICATION/JSON", "")
SMALL_MAX_TOKENS = st.integers(1, 3)
REAL_IMAGES = ("png", "jpeg", "gif", "bmp", "webp", "tiny-png", "wide-png")


@dataclass(frozen=True)
class Limits:
    """The app's caps, so edges land at the limit and one past it."""

    max_body_bytes: int = 25 * 1024 * 1024
    max_json_depth: int = 32
    max_tokens_limit: int = 1024
    max_prompt_chars: int = 32768
    max_inputs: int = 256
    max_text_chars: int = 2048
    max_labels: int = 64
    max_label_chars: int = 200
    media: MediaLimits = MediaLimits()

    @classmethod
    def from_config(cls, config: Any) -> Limits:
        """From a deployments.core.config.AppConfig."""
        return cls(max_body_bytes=config.ingress.max_body_bytes,
                   max_json_depth=config.ingress.max_json_depth,
                   max_tokens_limit=config.text.max_tokens_limit,
                   max_prompt_chars=config.text.max_prompt_chars,
                   max_inputs=config.vision.max_inputs,
                   max_text_chars=config.vision.max_text_chars,
                   max_labels=config.vision.max_labels,
                   max_label_chars=config.vision.max_label_chars,
                   media=MediaLimits(config.vision.max_image_pixels, config.audio.max_duration_s))


@dataclass(frozen=True)
class FuzzRequest:
    route: str  # what summaries count by: chat, chat-stream, embeddings, ..., other
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def stream(self) -> bool:
        return self.route.endswith("-stream")

    def describe(self, limit: int = 300) -> dict[str, Any]:
        body = self.body[:limit].decode("utf-8", errors="replace")
        return {"route": self.route, "method": self.method, "path": self.path[:limit],
                "headers": dict(self.headers), "body_bytes": len(self.body), "body": body}


# -- values -----------------------------------------------------------------------------------

any_text = st.text(st.characters(exclude_categories=()), max_size=40)  # surrogates included
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(HUGE_INTS),
                        st.floats(allow_nan=True, allow_infinity=True), any_text)
json_junk = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)), max_leaves=12)
junk_but_not_null = json_junk.filter(lambda value: value is not None)
extra_fields = st.dictionaries(st.text(max_size=12), json_junk, max_size=3)


def sometimes(valid: st.SearchStrategy, invalid: st.SearchStrategy,
              valid_share: int = 4) -> st.SearchStrategy:
    """`valid` about valid_share times in valid_share + 1, else `invalid`."""
    return st.integers(0, valid_share).flatmap(lambda i: invalid if i == 0 else valid)


def long_text(limit: int) -> st.SearchStrategy:
    """Text at the limit or just over it, made by repetition so it costs nothing to draw."""
    return st.sampled_from((limit, limit + 1)).map(lambda n: ("ab" * n)[:n])


def json_body(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, allow_nan=True).encode()


class Fields:
    """Field strategies for one route family: each field valid most of the time and wrong (an
    edge, past it, the wrong type) otherwise; or, with `valid_only`, always valid, so a good
    share of the requests reaches the models with varied but legal values."""

    def __init__(self, limits: Limits, valid_only: bool = False) -> None:
        self.limits, self.valid_only = limits, valid_only

    def pick(self, valid: st.SearchStrategy, invalid: st.SearchStrategy,
             valid_share: int = 4) -> st.SearchStrategy:
        return valid if self.valid_only else sometimes(valid, invalid, valid_share)

    def integer(self, valid: st.SearchStrategy, edges: tuple[Any, ...] = ()) -> st.SearchStrategy:
        wrong = st.one_of(st.sampled_from(edges + HUGE_INTS), st.floats(allow_nan=True),
                          st.sampled_from(ODD_FLOATS), junk_but_not_null)
        return self.pick(valid, wrong)

    def number(self, low: float, high: float) -> st.SearchStrategy:
        wrong = st.one_of(st.sampled_from(ODD_FLOATS + (low - 1e-9, high + 1e-9, high * 10)),
                          junk_but_not_null)
        return self.pick(st.floats(low, high), wrong)

    def max_tokens(self) -> st.SearchStrategy:
        return self.integer(SMALL_MAX_TOKENS, (0, -1, self.limits.max_tokens_limit + 1))

    def seed(self) -> st.SearchStrategy:
        return self.integer(st.integers(0, 2**31 - 1), (-1, -(2**31)))

    def image(self) -> st.SearchStrategy[str]:
        media = images(self.limits.media)
        names = [n for n in sorted(media) if self.valid_only is False or n in REAL_IMAGES]
        encoded = st.sampled_from(names).map(lambda name: b64(media[name]))
        data_url = st.sampled_from(("png", "jpeg", "webp")).map(
            lambda name: f"data:image/{name};base64,{b64(media[name])}")
        wrong = st.one_of(st.binary(max_size=200).map(b64), st.text(max_size=30),
                          st.just("data:image/png,notbase64"), st.just("***not base64***"),
                          st.binary(max_size=64).map(lambda raw: b64(raw)[:-1]))
        return self.pick(st.one_of(encoded, data_url), wrong, valid_share=3)


# -- chat ---------------------------------------------------------------------------------------

def _message(f: Fields) -> st.SearchStrategy:
    parts = st.lists(st.fixed_dictionaries({
        "type": f.pick(st.just("text"), st.sampled_from(["image_url", "x"])),
        "text": f.pick(st.text(max_size=20), json_junk)}), min_size=1, max_size=3)
    content = f.pick(st.one_of(st.text(max_size=60), parts), st.one_of(
        any_text, long_text(f.limits.max_prompt_chars), st.none(), json_junk))
    role = f.pick(st.sampled_from(ROLES), json_junk)
    return st.fixed_dictionaries({"role": role, "content": content}, optional={
        "name": json_junk, "tool_calls": json_junk})


def _chat_fields(f: Fields) -> st.SearchStrategy[dict[str, Any]]:
    messages = f.pick(st.lists(_message(f), min_size=1, max_size=3),
                      st.one_of(st.just([]), json_junk,
                                st.lists(json_junk, min_size=1, max_size=3)))
    return st.fixed_dictionaries({
        "model": f.pick(st.just(TEXT_MODEL), json_junk), "messages": messages,
        "max_tokens": f.max_tokens(), "stream": f.pick(st.booleans(), junk_but_not_null),
    }, optional={
        "max_completion_tokens": f.max_tokens(), "temperature": f.number(0.0, 2.0),
        "top_p": f.number(1e-6, 1.0), "stop": f.pick(
            st.one_of(st.text(max_size=8), st.lists(st.text(max_size=8), max_size=4)),
            st.one_of(st.lists(st.text(max_size=4), min_size=5, max_size=8), json_junk)),
        "seed": f.seed(), "n": f.integer(st.just(1), (0, 2, -1)),
        "stream_options": f.pick(st.fixed_dictionaries({"include_usage": st.booleans()}),
                                 json_junk),
    })


def _chat_request(fields: dict[str, Any]) -> FuzzRequest:
    route = "chat-stream" if fields.get("stream") is True else "chat"
    return FuzzRequest(route, "POST", "/v1/chat/completions", json_body(fields),
                       (("content-type", "application/json"),))


# -- embeddings ---------------------------------------------------------------------------------

def _embedding_fields(f: Fields) -> st.SearchStrategy[dict[str, Any]]:
    texts = f.pick(st.text(min_size=1, max_size=40), st.one_of(
        long_text(f.limits.max_text_chars), st.just(""), any_text))
    text_input = st.one_of(texts, st.lists(texts, min_size=1, max_size=4))
    if not f.valid_only:
        text_input = st.one_of(text_input, st.just(["a"] * (f.limits.max_inputs + 1)))
    image = f.image()
    image_input = st.one_of(image, st.lists(image, min_size=1, max_size=3))
    models_and_inputs = [
        st.tuples(st.just(CLIP_MODEL), f.pick(text_input, json_junk)),
        st.tuples(st.just(CLIP_MODEL + "-image"), f.pick(image_input, st.one_of(
            json_junk, st.just([]), texts)))]
    if not f.valid_only:
        models_and_inputs.append(st.tuples(json_junk, st.one_of(texts, image_input)))
    options = st.fixed_dictionaries({}, optional={
        "encoding_format": f.pick(st.sampled_from(["float", "base64"]), json_junk),
        "dimensions": f.pick(st.just(512), f.integer(st.integers(-5, 5000))),
        "user": json_junk})
    return st.tuples(st.one_of(models_and_inputs), options).map(
        lambda t: {**t[1], "model": t[0][0], "input": t[0][1]})


def _embedding_request(fields: dict[str, Any]) -> FuzzRequest:
    return FuzzRequest("embeddings", "POST", "/v1/embeddings", json_body(fields),
                       (("content-type", "application/json"),))


# -- transcriptions (multipart) -------------------------------------------------------------------

def _upload(f: Fields) -> st.SearchStrategy[tuple[str, str, bytes, str | None]]:
    clips = audio(f.limits.media)
    if f.valid_only:
        return st.tuples(st.just("file"), st.just("speech.wav"), st.just(clips["wav"]),
                         st.sampled_from(["audio/wav", "application/octet-stream"]))
    media = {**clips, "png": images(f.limits.media)["png"]}
    data = st.one_of(st.sampled_from(sorted(media)).map(media.__getitem__),
                     st.binary(max_size=300))
    content_type = st.one_of(st.sampled_from(["audio/wav", "audio/ogg", "audio/mpeg",
                                              "application/octet-stream", "image/png",
                                              "text/plain", "video/mp4"]),
                             st.none(), st.text(st.characters(min_codepoint=33,
                                                              max_codepoint=126), max_size=20))
    filename = st.one_of(st.just("speech.wav"), st.text(st.characters(
        min_codepoint=32, max_codepoint=126, exclude_characters='"\\'), max_size=20))
    return st.tuples(st.sampled_from(["file", "file", "other"]), filename, data, content_type)


def multipart(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes, str | None]],
              boundary: str) -> bytes:
    parts = []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     .encode() + value.encode("utf-8", "surrogatepass") + b"\r\n")
    for name, filename, data, content_type in files:
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\n')
        if content_type is not None:
            head += f"Content-Type: {content_type}\r\n"
        parts.append(head.encode() + b"\r\n" + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def _transcription_parts(f: Fields) -> st.SearchStrategy[tuple]:
    fields = st.fixed_dictionaries({
        "model": f.pick(st.sampled_from([WHISPER_MODEL, "whisper-1"]), st.text(max_size=12)),
    }, optional={
        "response_format": f.pick(st.sampled_from(TRANSCRIPTION_FORMATS), any_text),
        "language": f.pick(st.sampled_from(["en", "fr"]), any_text),
        "temperature": f.pick(st.just("0"), st.sampled_from(["-1", "nan", "1e999", "x"])),
    })
    upload = _upload(f)
    files = st.lists(upload, min_size=1, max_size=1)
    extra = st.just([])
    mangle = st.just("none")
    if not f.valid_only:
        files = st.one_of(files, st.lists(upload, max_size=3))
        extra = st.lists(st.tuples(st.sampled_from(["model", "response_format", "language",
                                                    "prompt", "x"]), st.text(max_size=12)),
                         max_size=2)
        mangle = st.sampled_from(["none", "none", "none", "truncate", "no-boundary",
                                  "wrong-boundary", "json-type"])
    return st.tuples(fields, extra, files, mangle, st.integers(1, 200))


def _transcription(drawn: tuple) -> FuzzRequest:
    fields, extra, files, mangle, cut = drawn
    boundary = "fuzzBoundary7MA4YWxk"
    body = multipart(list(fields.items()) + extra, files, boundary)
    content_type = f"multipart/form-data; boundary={boundary}"
    if mangle == "truncate":
        body = body[: max(0, len(body) - cut)]
    elif mangle == "no-boundary":
        content_type = "multipart/form-data"
    elif mangle == "wrong-boundary":
        content_type = "multipart/form-data; boundary=somethingElse"
    elif mangle == "json-type":
        content_type = "application/json"
    return FuzzRequest("transcriptions", "POST", "/v1/audio/transcriptions", body,
                       (("content-type", content_type),))


# -- pipeline -----------------------------------------------------------------------------------

def _pipeline_fields(f: Fields) -> st.SearchStrategy[dict[str, Any]]:
    clips = audio(f.limits.media)
    names = ["wav"] if f.valid_only else sorted(clips)
    sound = f.pick(st.sampled_from(names).map(lambda name: b64(clips[name])),
                   st.one_of(st.binary(max_size=100).map(b64), st.just("%%%"), json_junk))
    labels = f.pick(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=4),
                    st.one_of(st.just([]), st.just(["x"] * (f.limits.max_labels + 1)),
                              st.lists(long_text(f.limits.max_label_chars), min_size=1,
                                       max_size=2), json_junk))
    return st.fixed_dictionaries({"max_tokens": f.max_tokens()}, optional={
        "audio": sound, "image": f.image(), "labels": labels,
        "prompt": f.pick(st.text(max_size=60), st.one_of(
            long_text(f.limits.max_prompt_chars), json_junk)),
        "stream": f.pick(st.booleans(), junk_but_not_null),
        "temperature": f.number(0.0, 2.0), "seed": f.seed(),
    })


def _pipeline(fields: dict[str, Any]) -> FuzzRequest:
    route = "pipeline-stream" if fields.get("stream") is True else "pipeline"
    return FuzzRequest(route, "POST", "/v1/pipeline", json_body(fields),
                       (("content-type", "application/json"),))


# -- per route: three parts fuzzed, one part valid ------------------------------------------------

def _family(limits: Limits, fields: Any, build: Any,
            extras: bool = True) -> st.SearchStrategy[FuzzRequest]:
    def requests(valid_only: bool) -> st.SearchStrategy[FuzzRequest]:
        drawn = fields(Fields(limits, valid_only))
        if extras and not valid_only:  # unknown fields: refused (400), never a 5xx
            drawn = st.tuples(drawn, extra_fields).map(lambda pair: {**pair[1], **pair[0]})
        return drawn.map(build)

    fuzzed = requests(False)
    return st.one_of(fuzzed, fuzzed, fuzzed, requests(True))


def chat_requests(limits: Limits = Limits()) -> st.SearchStrategy[FuzzRequest]:
    return _family(limits, _chat_fields, _chat_request)


def embedding_requests(limits: Limits = Limits()) -> st.SearchStrategy[FuzzRequest]:
    return _family(limits, _embedding_fields, _embedding_request)


def transcription_requests(limits: Limits = Limits()) -> st.SearchStrategy[FuzzRequest]:
    return _family(limits, _transcription_parts, _transcription, extras=False)


def pipeline_requests(limits: Limits = Limits()) -> st.SearchStrategy[FuzzRequest]:
    return _family(limits, _pipeline_fields, _pipeline)


# -- everything else ----------------------------------------------------------------------------

def route_requests() -> st.SearchStrategy[FuzzRequest]:
    """Any method on the known routes and on made-up paths, with or without a query."""
    path_chars = st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="#?")
    made_up = st.one_of(st.text(path_chars, max_size=30).map(lambda p: "/" + p),
                        st.text(path_chars, max_size=20).map(lambda p: "/v1/" + p),
                        st.just("/" + "a" * 4000), st.just("//v1//models"),
                        st.just("/v1/models/"), st.just("/%ff%fe"), st.just("/../../etc/passwd"))
    path = st.one_of(st.sampled_from(KNOWN_PATHS), made_up)
    query = st.one_of(st.just(""), st.text(path_chars, max_size=20).map(lambda q: "?" + q))
    return st.tuples(st.sampled_from(METHODS), path, query, st.binary(max_size=64)).map(
        lambda t: FuzzRequest(_label(t[1]), t[0], t[1] + t[2],
                              t[3] if t[0] not in ("GET", "HEAD") else b""))


def _label(path: str) -> str:
    known = {"/healthz": "healthz", "/readyz": "readyz", "/v1/models": "models",
             "/v1/chat/completions": "chat", "/v1/completions": "completions",
             "/v1/embeddings": "embeddings", "/v1/audio/transcriptions": "transcriptions",
             "/v1/audio/translations": "translations", "/v1/pipeline": "pipeline"}
    return known.get(path, "other")


def raw_body_requests(limits: Limits = Limits()) -> st.SearchStrategy[FuzzRequest]:
    """Bodies no schema would make, sent to the JSON routes under any content type."""
    depth = st.sampled_from((limits.max_json_depth - 1, limits.max_json_depth,
                             limits.max_json_depth + 1, 1000, 100_000))
    nested = st.tuples(depth, st.sampled_from(["[]", "{}"])).map(_nested)
    body = st.one_of(
        st.binary(max_size=400), nested,
        st.just(b'{"model": "' + TEXT_MODEL.encode() + b'", "seed": ' + b"9" * 5000 + b"}"),
        st.just(b'{"max_tokens": 1e999999}'), st.just(b'{"messages": "\xff\xfe"}'),
        st.just('{"model": "x"}'.encode("utf-16")), st.just(b""), st.just(b"null"),
        st.just(b'{"a": 1, "a": 2}'), st.just(b" " * (limits.max_body_bytes + 1)),
        st.text(max_size=200).map(lambda text: text.encode()))
    path = st.sampled_from(("/v1/chat/completions", "/v1/embeddings", "/v1/pipeline"))
    content_type = st.sampled_from(CONTENT_TYPES)
    return st.tuples(path, body, content_type).map(
        lambda t: FuzzRequest(_label(t[0]), "POST", t[0], t[1],
                              (("content-type", t[2]),) if t[2] else ()))


def _nested(shape: tuple[int, str]) -> bytes:
    depth, brackets = shape
    if brackets == "[]":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


# Past this an HTTP server or HAProxy (16 KB of headers) refuses the request itself, with a
# plain-text 400 or 431 the app never sees.
HUGE_HEADER_CHARS = 8000


def header_variants() -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    """Optional odd headers: a deadline (X-Request-Timeout) and an Authorization value,
    malformed, huge, unicode (sent as UTF-8 bytes) or repeated."""
    printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
    unicode = st.text(st.characters(min_codepoint=0xA0, exclude_categories=("Cs", "Cc")),
                      min_size=1, max_size=20)
    # Invalid values (a 400) or generous ones: a deadline short enough to pass is a correct 504,
    # which the fuzz would have to allow; tests/integration/test_deadlines.py covers that path.
    timeout = st.one_of(st.sampled_from(["0", "-1", "nan", "inf", "1e309", "abc", "", "-0.001",
                                         "600", "999999999", "1e-400", "1_000", "0x10",
                                         "\uff11\uff10\uff10\uff10", "600s", "9" * 500]),
                        printable.filter(lambda value: not _short_deadline(value)),
                        unicode)
    auth = st.one_of(st.sampled_from(["Bearer", "Bearer ", "Basic abc", "bearer x",
                                      "Bearer\tx", "Bearer  x y"]),
                     printable, unicode.map(lambda key: f"Bearer {key}"), unicode)
    huge = st.just("Bearer " + "A" * HUGE_HEADER_CHARS)
    repeated = st.one_of(
        st.lists(auth, min_size=2, max_size=3).map(
            lambda values: tuple(("authorization", v) for v in values)),
        st.lists(timeout, min_size=2, max_size=3).map(
            lambda values: tuple(("x-request-timeout", v) for v in values)))
    return st.one_of(st.just(()), st.just(()), st.just(()), st.just(()),
                     timeout.map(lambda v: (("x-request-timeout", v),)),
                     st.one_of(auth, huge).map(lambda v: (("authorization", v),)), repeated)


def _short_deadline(value: str) -> bool:
    try:
        return 0 < float(value) < 600
    except ValueError:
        return False


def with_headers(requests: st.SearchStrategy[FuzzRequest]) -> st.SearchStrategy[FuzzRequest]:
    return st.tuples(requests, header_variants()).map(
        lambda t: FuzzRequest(t[0].route, t[0].method, t[0].path, t[0].body,
                              t[0].headers + t[1]))


def any_request(limits: Limits = Limits()) -> st.SearchStrategy[FuzzRequest]:
    """One request to any route, schema-shaped or not: what the long fuzz run draws from."""
    return with_headers(st.one_of(
        chat_requests(limits), embedding_requests(limits), transcription_requests(limits),
        pipeline_requests(limits), route_requests(), raw_body_requests(limits)))
