"""The vectors of zero-shot labels, kept so a label is embedded once, not on every request.

A least-recently-used map of at most `capacity` labels. A request reads the vectors it finds
before it awaits the embedding of the ones it lacks, and answers from those and the new ones:
the requests that run meanwhile may evict any label, and none of that reaches a request already
past its check.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

V = TypeVar("V")


class LabelCache(Generic[V]):
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a label cache holds at least one label, not {capacity}")
        self.capacity = capacity
        self._vectors: OrderedDict[str, V] = OrderedDict()

    def __contains__(self, label: object) -> bool:
        return label in self._vectors

    def __len__(self) -> int:
        return len(self._vectors)

    async def vectors(self, labels: Iterable[str],
                      embed: Callable[[list[str]], Awaitable[list[V]]]) -> list[V]:
        """The vector of each of `labels`, in order: those cached, and `embed` of the others
        (each distinct label once), which are then cached."""
        labels = list(labels)
        found = self._hits(dict.fromkeys(labels))
        missing = [label for label in dict.fromkeys(labels) if label not in found]
        if missing:
            new = dict(zip(missing, await embed(missing), strict=True))
            self._store(new)
            found.update(new)
        return [found[label] for label in labels]

    def _hits(self, labels: Iterable[str]) -> dict[str, V]:
        """The cached vectors of `labels`, each marked as the most recently used."""
        hits = {}
        for label in labels:
            if label in self._vectors:
                self._vectors.move_to_end(label)
                hits[label] = self._vectors[label]
        return hits

    def _store(self, vectors: dict[str, V]) -> None:
        for label, vector in vectors.items():
            self._vectors[label] = vector
            self._vectors.move_to_end(label)
        while len(self._vectors) > self.capacity:
            self._vectors.popitem(last=False)
