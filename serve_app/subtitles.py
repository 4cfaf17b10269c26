"""Transcription and translation response formats of OpenAI's audio API: json, text,
verbose_json (openai's TranscriptionVerbose / TranslationVerbose: segments, and words when
asked), srt, vtt."""

from __future__ import annotations

from typing import Any

TRANSCRIPTION_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
# What a translation's verbose_json says its language is: OpenAI's, always English.
TRANSLATION_LANGUAGE = "english"
SEGMENT_FIELDS = ("id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
                  "compression_ratio", "no_speech_prob")
WORD_FIELDS = ("word", "start", "end")


def format_transcription(result: dict[str, Any], response_format: str,
                         task: str = "transcribe", words: bool = False) -> tuple[Any, str]:
    """(content, media type) of a transcription or translation (`task`) in the requested
    format; verbose_json has the words when asked."""
    if response_format == "json":
        return {"text": result["text"]}, "application/json"
    if response_format == "verbose_json":
        return verbose_json(result, task, words), "application/json"
    if response_format == "text":
        return result["text"] + "\n", "text/plain"
    if response_format == "srt":
        return to_srt(result["segments"]), "application/x-subrip"
    return to_vtt(result["segments"]), "text/vtt"


def verbose_json(result: dict[str, Any], task: str, words: bool) -> dict[str, Any]:
    language = TRANSLATION_LANGUAGE if task == "translate" else result["language"]
    verbose = {"task": task, "language": language, "duration": result["duration"],
               "text": result["text"], "segments": [_segment(s) for s in result["segments"]]}
    if words:
        verbose["words"] = [{name: word[name] for name in WORD_FIELDS}
                            for word in result.get("words", ())]
    return verbose


def _segment(segment: dict[str, Any]) -> dict[str, Any]:
    """A segment with every field of OpenAI's, zero where an older answer lacks one."""
    defaults = {"seek": 0, "tokens": [], "temperature": 0.0, "avg_logprob": 0.0,
                "compression_ratio": 0.0, "no_speech_prob": 0.0}
    return {name: segment.get(name, defaults.get(name)) for name in SEGMENT_FIELDS}


def to_srt(segments: list[dict[str, Any]]) -> str:
    blocks = [f"{i}\n{_clock(s['start'], ',')} --> {_clock(s['end'], ',')}\n{s['text']}\n"
              for i, s in enumerate(segments, start=1)]
    return "\n".join(blocks)


def to_vtt(segments: list[dict[str, Any]]) -> str:
    cues = [f"{_clock(s['start'], '.')} --> {_clock(s['end'], '.')}\n{s['text']}\n"
            for s in segments]
    return "WEBVTT\n\n" + "\n".join(cues)


def _clock(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"
