"""Batched speech-to-text on top of faster-whisper (CTranslate2).

Why not `WhisperModel.transcribe`? It handles one audio at a time: every request would run its
own encoder pass and its own decoding loop, so concurrent requests queue behind each other. A
serving replica instead receives a *batch* of requests (Ray Serve `@serve.batch`) and should pay
for one encoder pass and one decoder pass over all of them.

So this engine does the Whisper pipeline by hand, the way faster-whisper's
`BatchedInferencePipeline.generate_segment_batched` does for the windows of a single file, but
across requests:

1. cut every audio into fixed 30 s windows (no VAD, no seek-back on unfinished segments); the
   speech replica bounds the windows of one call (deployments/core/audio_windows.py);
2. compute each window's log-mel features, padded/trimmed to the encoder's 3000 frames;
3. stack the windows of *all* requests and run `encode` once;
4. detect the language per window (the first window decides for its whole request) unless the
   caller gave one;
5. run `generate` once for all windows, each with its own language prompt;
6. split each window's tokens into segments on timestamp tokens (0.02 s each, offset by the
   window start) and drop windows that the model itself marks as silence, unless their text
   is confident (avg logprob >= -1) and does not loop (compression ratio <= 2.4).

Each request has its own task, transcribe or translate (to English; an English-only model hears
only English, so it transcribes), in its windows' prompts: one generate serves both. A request
that asks for word timestamps gets them from the cross-attention alignment faster-whisper uses
(`add_word_timestamps`), run after generate over the windows that asked, grouped by language
and task (the alignment takes one start sequence); a group that is not the whole batch has its
windows encoded again, as the alignment reads the encoder output of its own windows.

Trade-offs versus sequential Whisper: no conditioning on previous text and no temperature
fallback, and a word crossing a 30 s boundary may be cut in two. In exchange a batch costs
about one model call, whatever the number of requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

from deployments.core.audio_media import SAMPLE_RATE
from deployments.core.audio_windows import WINDOW_SECONDS
from deployments.core.cpu_features import cpu_features
from deployments.core.models import resolve
from deployments.core.precision import resolve_compute_type

TIME_PRECISION = 0.02  # seconds per timestamp token
NO_SPEECH_THRESHOLD = 0.6  # same defaults as faster-whisper's transcribe()
LOGPROB_THRESHOLD = -1.0
# Whisper's mark of a degenerate, looping decode (e.g. "1.0.0.0..." on silence), which its
# sequential transcribe() answers with a temperature fallback that this engine does not have.
COMPRESSION_RATIO_THRESHOLD = 2.4
# faster-whisper's transcribe() defaults: punctuation merged into the word before or after it.
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
Task = Literal["transcribe", "translate"]


@dataclass
class Segment:
    """A span of text with its times, and what Whisper's verbose output says of it: `seek`
    (its window's start in 10 ms frames), its text tokens, the decoding temperature, and its
    window's average log probability and no-speech probability."""

    id: int
    start: float
    end: float
    text: str
    seek: int = 0
    tokens: list[int] = field(default_factory=list)
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0


@dataclass
class Word:
    word: str
    start: float
    end: float
    probability: float


@dataclass
class Transcription:
    text: str
    language: str
    language_probability: float
    duration: float
    segments: list[Segment] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)


@dataclass
class _Window:
    """One 30 s slice of one request's audio."""

    request: int
    offset: float  # seconds from the start of the request's audio
    duration: float
    samples: np.ndarray


def _split_windows(request: int, audio: np.ndarray) -> list[_Window]:
    """Cut one audio into 30 s windows; an empty audio still gets one (empty) window."""
    step = WINDOW_SECONDS * SAMPLE_RATE
    windows = []
    for start in range(0, max(len(audio), 1), step):
        chunk = audio[start : start + step]
        windows.append(_Window(request, start / SAMPLE_RATE, len(chunk) / SAMPLE_RATE, chunk))
    return windows


def _clamp_span(start: float, end: float, duration: float) -> tuple[float, float]:
    """Keep a segment inside its window and make it non-empty (start < end)."""
    end = min(max(end, 0.0), duration)
    start = min(max(start, 0.0), end)
    if end <= start:
        start = max(0.0, end - TIME_PRECISION)
        end = max(end, start + TIME_PRECISION)
    return start, end


def _split_on_timestamps(
    tokens: list[int], timestamp_begin: int, duration: float
) -> list[tuple[float, float, list[int]]]:
    """Window tokens -> (start, end, text tokens), times relative to the window.

    Whisper emits `<|t0|> text <|t1|><|t1|> text <|t2|>`; a timestamp closes the open text, a
    timestamp with no text before it opens the next segment. Text left open at the end (no
    closing timestamp, or no timestamps at all) runs to the window end.
    """
    spans: list[tuple[float, float, list[int]]] = []
    start, text = 0.0, []
    for token in tokens:
        if token < timestamp_begin:
            text.append(token)
            continue
        time = (token - timestamp_begin) * TIME_PRECISION
        if text:
            spans.append((*_clamp_span(start, time, duration), text))
            text = []
        start = time
    if text:
        spans.append((*_clamp_span(start, duration, duration), text))
    return spans


class FasterWhisperEngine:
    """A faster-whisper model that transcribes many audios with one encode + one generate."""

    def __init__(
        self,
        model_path: str,
        compute_type: str = "auto",
        cpu_threads: int = 1,
        device: str = "cpu",
        beam_size: int = 1,
        num_workers: int = 1,
    ) -> None:
        """`compute_type` "auto" is chosen for the device and this CPU's flags
        (deployments/core/precision.py); the choice and its reason are in `choices`."""
        device = _device(device)
        self.choices = {"compute_type": resolve_compute_type(
            compute_type, device, cpu_features(), ctranslate2.get_supported_compute_types(device))}
        self.model = WhisperModel(
            model_path,
            device=device,
            compute_type=self.choices["compute_type"].value,
            cpu_threads=cpu_threads,
            num_workers=num_workers,
            local_files_only=True,
        )
        self.beam_size = beam_size
        self.multilingual: bool = self.model.model.is_multilingual
        self.model_calls = 0
        self._tokenizers: dict[tuple[str, Task], Tokenizer] = {}
        self._suppress_tokens = list(get_suppressed_tokens(self._tokenizer("en"), [-1]))
        # faster-whisper lists "yue" (added in large-v3) for every multilingual model; one with
        # no token for it would decode it unforced, and fail any batch it shares with others.
        self._supported = [lang for lang in self.model.supported_languages
                           if not self.multilingual or self._tokenizer(lang).language is not None]

    @classmethod
    def from_config(cls, config: Any, model_dir: str) -> FasterWhisperEngine:
        return cls(str(resolve(config.model, model_dir)), config.compute_type, config.threads,
                   config.device, config.beam_size)

    @property
    def supported_languages(self) -> list[str]:
        return self._supported

    def _tokenizer(self, language: str, task: Task = "transcribe") -> Tokenizer:
        if (language, task) not in self._tokenizers:
            self._tokenizers[(language, task)] = Tokenizer(
                self.model.hf_tokenizer, self.multilingual, task=task, language=language
            )
        return self._tokenizers[(language, task)]

    def _check_language(self, language: str | None) -> str | None:
        """None stays None (detect); English-only models accept only English."""
        if language is None:
            return None if self.multilingual else "en"
        language = language.strip().lower()
        if language not in self.supported_languages:
            raise ValueError(f"Unsupported language {language!r} for this Whisper model.")
        return language

    def _features(self, windows: list[_Window]) -> np.ndarray:
        """(n_windows, n_mels, 3000) log-mel features, as the encoder expects them."""
        frames = self.model.feature_extractor.nb_max_frames
        feats = [
            pad_or_trim(self.model.feature_extractor(w.samples)[..., :-1], frames) for w in windows
        ]
        return np.ascontiguousarray(np.stack(feats), dtype=np.float32)

    def _languages(
        self, windows: list[_Window], given: list[str | None], encoder_output
    ) -> list[tuple[str, float]]:
        """(language, probability) per request: given, or detected on its first window."""
        if all(lang is not None for lang in given):
            return [(lang, 1.0) for lang in given]
        detected = self.model.model.detect_language(encoder_output)
        first = {w.request: detected[i][0] for i, w in enumerate(windows) if w.offset == 0.0}
        return [
            (lang, 1.0) if lang is not None else (first[i][0][2:-2], float(first[i][1]))
            for i, lang in enumerate(given)
        ]

    def _generate(self, encoder_output, prompts: list[list[int]]) -> list:
        return self.model.model.generate(
            encoder_output,
            prompts,
            beam_size=self.beam_size,
            max_length=self.model.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress_tokens,
        )

    def _window_segments(self, window: _Window, result, tokenizer: Tokenizer) -> list[dict]:
        """One window's segments, absolute times, in faster-whisper's shape (what its
        add_word_timestamps takes); [] for silence."""
        tokens = list(result.sequences_ids[0])
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        seek = round(window.offset * self.model.frames_per_second)
        spans = []
        for start, end, text_tokens in _split_on_timestamps(
            tokens, tokenizer.timestamp_begin, window.duration
        ):
            text = tokenizer.decode(text_tokens).strip()
            if text:
                spans.append(dict(start=window.offset + start, end=window.offset + end,
                                  text=text, tokens=text_tokens, seek=seek,
                                  avg_logprob=avg_logprob, no_speech_prob=result.no_speech_prob))
        silent = result.no_speech_prob > NO_SPEECH_THRESHOLD
        looping = _looping([span["text"] for span in spans])
        if silent and (not spans or avg_logprob < LOGPROB_THRESHOLD or looping):
            return []
        return spans

    def _add_words(self, windows: list[_Window], spans: list[list[dict]],
                   tokenizers: list[Tokenizer], features: np.ndarray, encoder_output,
                   wanted: list[bool]) -> None:
        """Word timestamps into the spans of the windows whose request asked, one alignment
        per tokenizer (language and task) among them."""
        groups: dict[int, list[int]] = {}
        for index, window in enumerate(windows):
            if wanted[window.request] and spans[index]:
                groups.setdefault(id(tokenizers[index]), []).append(index)
        for indices in groups.values():
            output = encoder_output if len(indices) == len(windows) else self.model.encode(
                np.ascontiguousarray(features[indices]))
            frames = [math.ceil(windows[i].duration) * self.model.frames_per_second
                      for i in indices]
            self.model.add_word_timestamps(
                [spans[i] for i in indices], tokenizers[indices[0]], output, frames,
                PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS, 0.0)

    def transcribe_batch(
        self, audios: list[np.ndarray], languages: list[str | None] | None = None,
        tasks: list[Task] | None = None, word_timestamps: list[bool] | None = None,
    ) -> list[Transcription]:
        """Transcribe (or translate) many 16 kHz mono float32 audios with a single encode +
        generate round.

        `languages[i]` forces request i's language (ISO code such as "en"); None detects it.
        `tasks[i]` is "transcribe" (the default) or "translate" (to English);
        `word_timestamps[i]` adds the words of request i with their times.
        """
        if not audios:
            return []
        languages = languages if languages is not None else [None] * len(audios)
        tasks = tasks if tasks is not None else ["transcribe"] * len(audios)
        wanted = word_timestamps if word_timestamps is not None else [False] * len(audios)
        if not len(languages) == len(tasks) == len(wanted) == len(audios):
            raise ValueError("languages, tasks and word_timestamps need one entry per audio.")
        given = [self._check_language(lang) for lang in languages]
        windows = [w for i, audio in enumerate(audios) for w in _split_windows(i, audio)]
        self.model_calls += 1
        features = self._features(windows)
        encoder_output = self.model.encode(features)
        request_langs = self._languages(windows, given, encoder_output)
        tokenizers = [self._tokenizer(request_langs[w.request][0], tasks[w.request])
                      for w in windows]
        prompts = [
            self.model.get_prompt(tok, previous_tokens=[], without_timestamps=False)
            for tok in tokenizers
        ]
        results = self._generate(encoder_output, prompts)
        spans = [self._window_segments(window, result, tok)
                 for window, result, tok in zip(windows, results, tokenizers, strict=True)]
        if any(wanted):
            self._add_words(windows, spans, tokenizers, features, encoder_output, wanted)
        per_request: list[list[dict]] = [[] for _ in audios]
        for window, window_spans in zip(windows, spans, strict=True):
            per_request[window.request].extend(window_spans)
        return [
            _transcription(request_spans, lang, lang_prob, len(audio) / SAMPLE_RATE)
            for request_spans, (lang, lang_prob), audio in zip(
                per_request, request_langs, audios, strict=True
            )
        ]


def _device(device: str) -> str:
    """CTranslate2's "auto" device made explicit: cuda when it sees a GPU, else cpu."""
    if device != "auto":
        return device
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def _transcription(
    spans: list[dict], language: str, probability: float, duration: float
) -> Transcription:
    segments = [
        Segment(id=i, start=round(span["start"], 3), end=round(span["end"], 3),
                text=span["text"], seek=span["seek"], tokens=list(span["tokens"]),
                avg_logprob=float(span["avg_logprob"]),
                compression_ratio=get_compression_ratio(span["text"]),
                no_speech_prob=float(span["no_speech_prob"]))
        for i, span in enumerate(spans)
    ]
    words = [Word(word["word"], float(word["start"]), float(word["end"]),
                  float(word["probability"]))
             for span in spans for word in span.get("words", ())]
    return Transcription(
        text=" ".join(seg.text for seg in segments),
        language=language,
        language_probability=probability,
        duration=duration,
        segments=segments,
        words=words,
    )


def _looping(texts: list[str]) -> bool:
    return get_compression_ratio(" ".join(texts)) > COMPRESSION_RATIO_THRESHOLD
