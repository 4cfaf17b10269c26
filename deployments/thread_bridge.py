"""Runs a blocking iterator (a decode loop) in a thread and consumes it from asyncio."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

from deployments.free_memory import give_back_free_memory

T = TypeVar("T")
_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


async def iterate_in_thread(
    make_iterator: Callable[[threading.Event], Iterator[T]],
) -> AsyncIterator[T]:
    """Yields the iterator's items; the event is set when the consumer stops early."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancelled = threading.Event()

    def produce() -> None:
        try:
            for item in make_iterator(cancelled):
                loop.call_soon_threadsafe(queue.put_nowait, item)
        except BaseException as error:  # handed to the consumer, not lost in the thread
            loop.call_soon_threadsafe(queue.put_nowait, _Failure(error))
        finally:
            give_back_free_memory()  # what the loop's temporaries held, as the model thread does
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    worker = loop.run_in_executor(None, produce)
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        cancelled.set()
        await asyncio.shield(worker)
