"""One bad row fails alone: good and bad requests sent together through the deployment handles
share a batch (the shared app's 0.2 s batch window; text rows share the scheduler), the bad
one gets its own error and the good ones the same answers they get alone. batch_stats shows
the model calls they caused."""

from __future__ import annotations

import pytest

from deployments.core.errors import ServeError
from deployments.core.generation import SamplingParams
from serve_app.http_errors import status_of
from tests.conftest import deployment_handle
from tests.media import SENTENCES, speech_wav

pytestmark = pytest.mark.integration
PROMPTS = ["Name a colour.", "Name a fruit.", "Name an animal."]


def ask(prompt: str, seed: int) -> tuple[list[dict], SamplingParams]:
    return ([{"role": "user", "content": prompt}],
            SamplingParams(max_tokens=8, temperature=0.7, seed=seed))


def method_stats(deployment: str, method: str) -> dict:
    stats = deployment_handle(deployment).batch_stats.remote().result()
    return stats["methods"].get(method, {"model_calls": 0, "recent_batches": []})


def outcomes(responses: list) -> list:
    """Each response's result, or the ServeError it failed with."""
    found = []
    for response in responses:
        try:
            found.append(response.result())
        except Exception as error:  # Ray wraps the replica's error; its cause is the original
            found.append(getattr(error, "cause", error))
    return found


def shared_model_calls(deployment: str, method: str, send) -> tuple[list, list[int]]:
    """The outcomes of the requests `send` makes at once, and the sizes of the model calls
    they caused."""
    before = method_stats(deployment, method)["model_calls"]
    found = outcomes(send())
    after = method_stats(deployment, method)
    new_calls = after["model_calls"] - before
    return found, after["recent_batches"][-new_calls:] if new_calls else []


def assert_own_error(outcome, status: int, param: str) -> None:
    assert isinstance(outcome, ServeError), outcome
    assert (status_of(outcome), outcome.param) == (status, param)


def test_a_bad_seed_fails_alone_among_running_text_rows(app_url):
    text = deployment_handle("TextGenerator")
    alone = [text.generate.remote(*ask(p, seed=i)).result().text
             for i, p in enumerate(PROMPTS)]

    def send() -> list:
        good = [text.generate.remote(*ask(p, seed=i)) for i, p in enumerate(PROMPTS)]
        return [*good, text.generate.remote(*ask("Name a car.", seed=2**80))]

    # The scheduler takes rows as they come: the bad one is refused before it takes a row.
    (*good, bad), prefills = shared_model_calls("TextGenerator", "prefill", send)
    assert sum(prefills) == 3, f"prefills of {prefills} for three good requests"
    assert [completion.text for completion in good] == alone
    assert_own_error(bad, 400, "seed")


def test_a_bad_text_input_fails_alone_in_a_shared_embedding_batch(app_url):
    vision = deployment_handle("ImageEmbedder")
    texts = ["a red circle", "a photo of a dog", "a blue square"]
    alone = [vision.embed_texts.remote([t]).result().vectors[0] for t in texts]

    def send() -> list:
        return [*(vision.embed_texts.remote([t]) for t in texts), vision.embed_texts.remote([42])]

    (*good, bad), batches = shared_model_calls("ImageEmbedder", "embed_text", send)
    assert batches == [3], f"the good inputs took model calls of {batches}"
    for reply, reference in zip(good, alone):
        assert reply.vectors[0].tolist() == pytest.approx(reference.tolist(), abs=1e-5)
    assert_own_error(bad, 400, "input")


def test_bad_audio_requests_fail_alone_beside_a_shared_batch(app_url):
    audio = deployment_handle("SpeechTranscriber")
    clips = [speech_wav(SENTENCES[0]), speech_wav(SENTENCES[1])]
    alone = [audio.transcribe.remote(clip).result().text for clip in clips]

    def send() -> list:
        good = [audio.transcribe.remote(clip) for clip in clips]
        # "yue" has no token in Whisper base: decoded unforced, it broke every batch it joined
        return [*good, audio.transcribe.remote(clips[0], "yue"),
                audio.transcribe.remote(b"RIFF\x00\x00\x00\x00WAVE not audio")]

    (*good, no_language, not_audio), batches = shared_model_calls(
        "SpeechTranscriber", "transcribe", send)
    assert batches == [2], f"the good clips took model calls of {batches}"
    assert [result.text for result in good] == alone
    assert_own_error(no_language, 400, "language")
    assert_own_error(not_audio, 422, "file")
