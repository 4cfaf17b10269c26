"""The KV cache of the rows decoding together, left-padded to one width.

A row joins with the cache of its own prefill and leaves the moment it finishes; the rows that
stay keep their cache as it is (never recomputed). Padding columns are masked out of attention,
and each row keeps its own positions, so a row decodes as it would alone. Columns that have
become padding for every row (their rows left) are cut off, so the width follows the longest
row still running.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import DynamicCache


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

    def join(self, cache: DynamicCache, length: int) -> None:
        """Adds one row whose prefill left `length` tokens in `cache` (batch of one)."""
        if self.cache is None:
            self.cache = cache
            self.mask = torch.ones((1, length), dtype=torch.long)
            self.positions = torch.tensor([length])
            return
        width = max(self.width, length)
        for mine, (keys, values) in zip(self.cache.layers, kv_layers(cache), strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, width - self.width),
                                   _left_pad(keys, width - length)])
            mine.values = torch.cat([_left_pad(mine.values, width - self.width),
                                     _left_pad(values, width - length)])
        self.mask = torch.cat([_left_pad(self.mask, width - self.width),
                               _left_pad(torch.ones((1, length), dtype=torch.long),
                                         width - length)])
        self.positions = torch.cat([self.positions, torch.tensor([length])])

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
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, first_used:].contiguous()
            layer.values = layer.values[index, :, first_used:].contiguous()

    def step_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention mask and position ids for one decode step of every row."""
        mask = torch.cat([self.mask, torch.ones((self.rows, 1), dtype=torch.long)], dim=1)
        return mask, self.positions.unsqueeze(1)

    def stepped(self, mask: torch.Tensor) -> None:
        """After a decode step: the cache grew by one column, with that step's mask."""
        self.mask = mask
        self.positions = self.positions + 1
