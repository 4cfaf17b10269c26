"""Hands freed heap memory back to the operating system.

glibc keeps freed blocks in its arenas, so a replica's resident memory follows the largest batch
it has ever run (measured: the transformers engine drifts between 1310 and 1370 MiB over 120
varied batches, and a soak saw one text replica grow 9.7%). Trimming when the model thread goes
idle keeps RSS at the live heap (flat at 1284 MiB over the same batches) for about 2 ms.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


_TRIM = _malloc_trim()


def give_back_free_memory() -> bool:
    """True when the allocator returned memory to the system."""
    return bool(_TRIM and _TRIM(0))
