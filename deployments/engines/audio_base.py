"""The audio engine contract: what the speech deployment calls, whatever the backend. Blocking,
run on the replica's model thread; one transcription per 16 kHz mono float32 audio."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class AudioEngine(Protocol):
    @property
    def supported_languages(self) -> list[str]: ...

    def transcribe_batch(self, audios: list[np.ndarray],
                         languages: list[str | None] | None = None,
                         tasks: list[str] | None = None,
                         word_timestamps: list[bool] | None = None) -> list[Any]:
        """Per audio, a Transcription (text, language, language_probability, duration,
        segments, words): in its language, or translated to English where its task is
        "translate"; words timed where its word_timestamps says."""
        ...
