"""KV of prompt prefixes already computed in this replica, reused by the prompts that share them
(a system prompt, the earlier turns of a conversation).

The prompt is cut into blocks of `block_tokens`; a block is keyed by a digest of every token up
to its end, so a block is only ever reused at the same place after the same tokens. A lookup
takes the longest run of cached blocks from the start of the prompt. Blocks are evicted least
recently used first, bounded by bytes; a prefix's first blocks are touched last, so they are the
last to go (a chain is useless without its start). Thread-safe: a server without a model
thread may prefill from several threads at once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import torch

Layers = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [1, heads, n, dim]


class PrefixCache:
    def __init__(self, max_bytes: int, block_tokens: int = 16) -> None:
        self.max_bytes, self.block_tokens = max_bytes, block_tokens
        self._blocks: OrderedDict[bytes, Layers] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hit_tokens = self.looked_up_tokens = 0

    def _keys(self, prompt: list[int], blocks: int) -> list[bytes]:
        digest, keys = hashlib.blake2b(digest_size=16), []
        for b in range(blocks):
            block = prompt[b * self.block_tokens:(b + 1) * self.block_tokens]
            digest.update(b"".join(t.to_bytes(4, "little") for t in block))
            keys.append(digest.copy().digest())
        return keys

    def lookup(self, prompt: list[int]) -> tuple[int, Layers | None]:
        """(tokens found, their KV per layer) for the longest cached prefix of `prompt`, at
        least one token short of it: the last token is always computed, for its logits."""
        found: list[Layers] = []
        with self._lock:
            for key in self._keys(prompt, (len(prompt) - 1) // self.block_tokens):
                if key not in self._blocks:
                    break
                found.append(self._blocks[key])
            self._touch(self._keys(prompt, len(found)))
            self.looked_up_tokens += len(prompt)
            self.hit_tokens += len(found) * self.block_tokens
        if not found:
            return 0, None
        layers = [(torch.cat([block[i][0] for block in found], dim=2),
                   torch.cat([block[i][1] for block in found], dim=2))
                  for i in range(len(found[0]))]
        return len(found) * self.block_tokens, layers

    def store(self, prompt: list[int], layers: Layers) -> None:
        """Keeps the full blocks of a prompt whose KV (batch of one, prompt only) is `layers`."""
        keys = self._keys(prompt, len(prompt) // self.block_tokens)
        with self._lock:
            for b, key in enumerate(keys):
                if key in self._blocks:
                    continue
                span = slice(b * self.block_tokens, (b + 1) * self.block_tokens)
                block = [(k[:, :, span].clone(), v[:, :, span].clone()) for k, v in layers]
                self._blocks[key] = block
                self._bytes += _size(block)
            self._touch(keys)
            while self._bytes > self.max_bytes and self._blocks:
                self._bytes -= _size(self._blocks.popitem(last=False)[1])

    def _touch(self, keys: list[bytes]) -> None:
        for key in reversed(keys):
            if key in self._blocks:
                self._blocks.move_to_end(key)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"blocks": len(self._blocks), "bytes": self._bytes,
                    "hit_tokens": self.hit_tokens, "looked_up_tokens": self.looked_up_tokens}


def _size(block: Layers) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in block)
