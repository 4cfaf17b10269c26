"""Transcription response formats of OpenAI's audio API: json, text, verbose_json, srt, vtt."""

from __future__ import annotations

from typing import Any

TRANSCRIPTION_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")


def format_transcription(result: dict[str, Any], response_format: str) -> tuple[Any, str]:
    """(content, media type) of a transcription in the requested format."""
    if response_format == "json":
        return {"text": result["text"]}, "application/json"
    if response_format == "verbose_json":
        return {"task": "transcribe", "language": result["language"],
                "duration": result["duration"], "text": result["text"],
                "segments": result["segments"]}, "application/json"
    if response_format == "text":
        return result["text"] + "\n", "text/plain"
    if response_format == "srt":
        return to_srt(result["segments"]), "application/x-subrip"
    return to_vtt(result["segments"]), "text/vtt"


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
