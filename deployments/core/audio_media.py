"""Audio from request bytes: a container of the allow-list (told by its first bytes,
deployments/core/media_formats.py) opened by that container's FFmpeg demuxer alone, its codec
checked, decoded to the float32 mono samples at 16 kHz that speech models take, its duration
checked before it is decoded whole. No torch and no engine, so the replica decodes on its own
threads whatever engine serves it; errors are core errors (TooLarge: HTTP 413,
UnsupportedMediaType: HTTP 415, Undecodable: HTTP 422).
"""

from __future__ import annotations

import gc
import io
from collections.abc import Iterator, Sequence

import av
import numpy as np

from deployments.core.errors import TooLarge, Undecodable, UnsupportedMediaType
from deployments.core.media_formats import (
    AUDIO_DEMUXERS,
    DEFAULT_AUDIO_FORMATS,
    audio_codec_allowed,
    sniff_audio,
)

SAMPLE_RATE = 16000


def decode_audio_bytes(data: bytes, sampling_rate: int = SAMPLE_RATE,
                       max_duration_s: float | None = None,
                       formats: Sequence[str] = DEFAULT_AUDIO_FORMATS) -> np.ndarray:
    """Decode wav/flac/mp3/ogg/mp4/webm bytes (those of `formats`) to float32 mono samples at
    `sampling_rate`.

    A container known but not in `formats`, or a codec outside media_formats.AUDIO_CODECS,
    raises UnsupportedMediaType naming it. Past `max_duration_s` it raises TooLarge: at once
    when the container declares its duration, else as soon as the decoded audio passes it (so
    neither a long file nor a tiny one that expands to hours is ever held in memory). Raises
    Undecodable with a short sentence fit for a client for anything that is not audio.
    """
    if not data:
        raise Undecodable("The audio file is empty.")
    demuxer = _allowed_demuxer(data, formats)
    try:
        audio = _decode_mono(io.BytesIO(data), demuxer, sampling_rate, max_duration_s)
    except (av.FFmpegError, ValueError, IndexError, EOFError, OSError, ZeroDivisionError) as exc:
        raise Undecodable(
            f"The file could not be decoded as audio (accepted: {', '.join(formats)})."
        ) from exc
    if audio.size == 0:
        raise Undecodable("The audio file contains no audio samples.")
    return audio


def _allowed_demuxer(data: bytes, formats: Sequence[str]) -> str:
    """The FFmpeg demuxer for the container `data` starts with, if `formats` allows it."""
    container = sniff_audio(data)
    if container is None:
        raise Undecodable(f"The file is not audio in an accepted format "
                          f"({', '.join(formats)}).")
    if container not in formats:
        raise UnsupportedMediaType(f"The audio is {container}; accepted formats: "
                                   f"{', '.join(formats)}.")
    return AUDIO_DEMUXERS[container]


def _decode_mono(file: io.BytesIO, demuxer: str, sampling_rate: int,
                 max_duration_s: float | None) -> np.ndarray:
    """faster_whisper.audio.decode_audio (s16 mono through PyAV's resampler, then float32),
    opened by `demuxer` alone, with the codec checked and the duration checked from the
    container, then before each frame is resampled."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sampling_rate)
    chunks: list[np.ndarray] = []
    with av.open(file, mode="r", format=demuxer, metadata_errors="ignore") as container:
        stream = container.streams.audio[0]
        _check_codec(stream.codec_context.name)
        _check_duration(_declared_duration_s(container, stream), max_duration_s, declared=True)
        seconds = 0.0
        for frame in _valid_frames(container.decode(stream)):
            # Counted at the source rate before resampling, so a 1 Hz stream's frame of hours
            # is refused before it is expanded to 16 kHz.
            seconds += frame.samples / frame.sample_rate
            _check_duration(seconds, max_duration_s, declared=False)
            frame.pts = None  # as faster-whisper: ignore timestamp gaps
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    # PyAV's resampler holds objects that only the collector frees (faster-whisper#390).
    del resampler
    gc.collect()
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return samples.astype(np.float32) / 32768.0


def _check_codec(codec: str) -> None:
    if not audio_codec_allowed(codec):
        raise UnsupportedMediaType(f"The audio's codec is {codec}; accepted: PCM, FLAC, MP3, "
                                   f"Vorbis, Opus, AAC and ALAC.")


def _declared_duration_s(container: av.container.InputContainer, stream) -> float | None:
    """The duration the container states (from its header or an index), if it states one."""
    if container.duration is not None:
        return container.duration / av.time_base
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _check_duration(seconds: float | None, max_duration_s: float | None,
                    declared: bool) -> None:
    if seconds is None or max_duration_s is None or seconds <= max_duration_s:
        return
    lasts = f"lasts {seconds:.0f} s" if declared else f"lasts more than {max_duration_s:.0f} s"
    raise TooLarge(f"The audio {lasts}; the limit is {max_duration_s:.0f} s.")


def _valid_frames(frames: Iterator[av.AudioFrame]) -> Iterator[av.AudioFrame]:
    """Skips frames the decoder rejects as invalid data, as faster-whisper does."""
    while True:
        try:
            yield next(frames)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue
