"""The KV cache of the rows decoding together, left-padded to one width.

A row joins with the cache of its own prefill and leaves the moment it finishes; the rows that
stay keep their cache as it is (never recomputed). Padding columns are masked out of attention,
and each row keeps its own positions, so a row decodes as it would alone. Columns that have
become padding for every row (their rows left) are cut off, so the width follows the longest
row still running.

Each layer's keys and values live in a buffer with room to grow (GrowingLayer): a decode step
writes its column in place. transformers' DynamicLayer concatenates the whole cache every step
instead, which was 41% of a 16-row decode step here (torch.profiler, SmolLM2-135M, float32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

SPARE_COLUMNS = 64  # room a layer's buffer keeps for the steps to come; doubled as needed


class GrowingLayer(DynamicLayer):
    """A cache layer over a buffer [rows, heads, capacity, dim]; `keys` and `values` are views
    of its first `length` columns."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__()
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self._length = keys.shape[-2]
        self._key_buffer = self._buffer(keys, self._length + SPARE_COLUMNS)
        self._value_buffer = self._buffer(values, self._length + SPARE_COLUMNS)
        self._expose()

    @staticmethod
    def _buffer(tensor: torch.Tensor, capacity: int) -> torch.Tensor:
        rows, heads, length, dim = tensor.shape
        buffer = tensor.new_empty((rows, heads, capacity, dim))
        buffer[:, :, :length] = tensor
        return buffer

    def _expose(self) -> None:
        self.keys = self._key_buffer[:, :, :self._length]
        self.values = self._value_buffer[:, :, :self._length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object,
               **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
        end = self._length + key_states.shape[-2]
        if end > self._key_buffer.shape[-2]:
            capacity = max(end, 2 * self._key_buffer.shape[-2])
            self._key_buffer = self._buffer(self.keys, capacity)
            self._value_buffer = self._buffer(self.values, capacity)
        self._key_buffer[:, :, self._length:end] = key_states
        self._value_buffer[:, :, self._length:end] = value_states
        self._length = end
        self._expose()
        return self.keys, self.values


def _growing_cache(layers: list[tuple[torch.Tensor, torch.Tensor]]) -> DynamicCache:
    cache = DynamicCache()
    cache.layers = [GrowingLayer(keys, values) for keys, values in layers]
    return cache


def kv_layers(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _left_pad(tensor: torch.Tensor, columns: int) -> torch.Tensor:
    """Pads [batch, heads, width, dim] (or [batch, width] masks) on the left of width."""
    if columns == 0:
        return tensor
    if tensor.dim() == 2:
        return F.pad(tensor, (columns, 0))
    return F.pad(tensor, (0, 0, columns, 0))


class KVBatch:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.cache: DynamicCache | None = None
        self.mask = torch.zeros((0, 0), dtype=torch.long)  # [rows, width]: 1 = a real token
        self.positions = torch.zeros((0,), dtype=torch.long)  # per row, its next position

    @property
    def rows(self) -> int:
        return self.mask.shape[0]

    @property
    def width(self) -> int:
        return self.mask.shape[1]

    def join(self, cache: DynamicCache, length: int, copies: int = 1) -> None:
        """Adds `copies` rows (the choices of one request) whose prefill left `length` tokens
        in `cache` (batch of one); each row's KV is its own copy from then on."""
        layers = [(keys.expand(copies, -1, -1, -1), values.expand(copies, -1, -1, -1))
                  for keys, values in kv_layers(cache)]
        if self.cache is None:
            self.cache = _growing_cache(layers)
            self.mask = torch.ones((copies, length), dtype=torch.long)
            self.positions = torch.full((copies,), length)
            return
        width = max(self.width, length)
        self.cache = _growing_cache([
            (torch.cat([_left_pad(mine_k, width - self.width), _left_pad(keys, width - length)]),
             torch.cat([_left_pad(mine_v, width - self.width), _left_pad(values, width - length)]))
            for (mine_k, mine_v), (keys, values) in zip(kv_layers(self.cache), layers,
                                                        strict=True)])
        self.mask = torch.cat([_left_pad(self.mask, width - self.width),
                               _left_pad(torch.ones((copies, length), dtype=torch.long),
                                         width - length)])
        self.positions = torch.cat([self.positions, torch.full((copies,), length)])

    def keep(self, rows: list[int]) -> None:
        """Keeps only `rows` (indices, in order), then cuts columns no kept row uses."""
        if not rows:
            self.clear()
            return
        if len(rows) == self.rows:
            return
        index = torch.tensor(rows)
        self.mask, self.positions = self.mask[index], self.positions[index]
        first_used = int(self.mask.any(dim=0).nonzero()[0])
        self.mask = self.mask[:, first_used:]
        self.cache = _growing_cache([(keys[index, :, first_used:], values[index, :, first_used:])
                                     for keys, values in kv_layers(self.cache)])

    def step_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention mask and position ids for one decode step of every row."""
        mask = torch.cat([self.mask, torch.ones((self.rows, 1), dtype=torch.long)], dim=1)
        return mask, self.positions.unsqueeze(1)

    def stepped(self, mask: torch.Tensor) -> None:
        """After a decode step: the cache grew by one column, with that step's mask."""
        self.mask = mask
        self.positions = self.positions + 1
