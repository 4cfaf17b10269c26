"""What the front end uses of a Serve DeploymentHandle, over an object in this process: so the
same routes serve in-process models (the bench's no-Ray baseline) and replicas built without
Ray in unit tests.

    handle.method.remote(*args)                     -> awaitable, with cancel()
    handle.options(stream=True).method.remote(...)  -> async iterable, with cancel()
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from typing import Any


class LocalHandle:
    def __init__(self, target: Any, stream: bool = False) -> None:
        self._target = target
        self._stream = stream

    def options(self, stream: bool = False) -> LocalHandle:
        return LocalHandle(self._target, stream)

    def __getattr__(self, method: str) -> _LocalMethod:
        return _LocalMethod(getattr(self._target, method), self._stream)


class _LocalMethod:
    def __init__(self, function: Any, stream: bool) -> None:
        self._function = function
        self._stream = stream

    def remote(self, *args: Any, **kwargs: Any) -> LocalResponse | LocalStream:
        if self._stream:
            return LocalStream(self._function(*args, **kwargs))
        return LocalResponse(asyncio.ensure_future(self._function(*args, **kwargs)))


class LocalResponse:
    def __init__(self, task: asyncio.Future) -> None:
        self._task = task

    def __await__(self) -> Generator[Any, None, Any]:
        return self._task.__await__()

    def cancel(self) -> None:
        self._task.cancel()


class LocalStream:
    def __init__(self, items: AsyncIterator) -> None:
        self._items = items

    def __aiter__(self) -> AsyncIterator:
        return self._items

    def cancel(self) -> None:
        """Closes the generator, so its `finally` runs (its work is cancelled)."""
        asyncio.ensure_future(_close(self._items))


async def _close(items: AsyncIterator) -> None:
    try:
        await items.aclose()
    except RuntimeError:  # still running: the cancellation of its consumer ends it
        pass
