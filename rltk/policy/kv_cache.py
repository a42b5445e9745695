"""The decode loop's KV cache: transformers' ``DynamicCache`` whose layers keep their keys and values in a buffer
with room to grow, so a decode step writes its token in place.

Why: ``DynamicLayer.update`` appends with ``torch.cat``, which copies the whole cache of every layer at every step
(an eval batch of 256 rows x 60 tokens holds ~0.7 GB of keys and values for SmolLM2-135M). Here the buffer is sized
once for the prompt and every token the loop may generate; each step writes one position and hands attention a view.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class GrowingLayer(DynamicLayer):
    """A cache layer whose keys/values are views of a ``[batch, heads, capacity, dim]`` buffer; it reallocates only
    when an update would overflow (then with ``reserve`` positions to spare)."""

    def __init__(self, reserve: int):
        super().__init__()
        self.reserve = reserve
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self._n = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        if self._k is None or self._n + n > self._k.shape[-2]:
            self._resize(self._n + n + self.reserve, key_states, value_states)
        self._k[:, :, self._n:self._n + n] = key_states
        self._v[:, :, self._n:self._n + n] = value_states
        self._n += n
        self._views()
        return self.keys, self.values

    def _resize(self, capacity: int, k_like: torch.Tensor, v_like: torch.Tensor) -> None:
        k = k_like.new_empty((k_like.shape[0], k_like.shape[1], capacity, k_like.shape[3]))
        v = v_like.new_empty((v_like.shape[0], v_like.shape[1], capacity, v_like.shape[3]))
        if self._n:
            k[:, :, :self._n] = self._k[:, :, :self._n]
            v[:, :, :self._n] = self._v[:, :, :self._n]
        self._k, self._v = k, v

    def _views(self) -> None:
        self.keys, self.values = self._k[:, :, :self._n], self._v[:, :, :self._n]

    def get_seq_length(self) -> int:
        return self._n

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows ``indices`` (one copy of the buffer's kept rows, spare room included: the rows' filled
        part copied into a fresh buffer would be two copies)."""
        if not self._n:
            return
        self._k, self._v = self._k.index_select(0, indices), self._v.index_select(0, indices)
        self._views()

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        if self._n:
            self.batch_select_indices(beam_idx.to(self._k.device))

    def crop(self, tokens_to_remove: int) -> None:
        """Drop the last ``-tokens_to_remove`` positions (transformers' convention: a negative count)."""
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative number of tokens to remove, got {tokens_to_remove}")
        if tokens_to_remove and self._n:
            self._n = max(self._n + tokens_to_remove, 0)
            self._views()

    def reset(self) -> None:
        """Empty, as transformers' layer: the buffer is dropped (the next update may bring another batch size)."""
        self._k = self._v = None
        self._n = 0
        super().reset()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if not self._n:
            return
        self._k = self._k.repeat_interleave(repeats, dim=0)
        self._v = self._v.repeat_interleave(repeats, dim=0)
        self._views()


def growing_cache(config: Any, reserve: int) -> DynamicCache:
    """A ``DynamicCache`` for ``config``'s model whose full-attention layers are :class:`GrowingLayer` with room for
    ``reserve`` more tokens (what the loop may still add: the prompts' own tokens and the new ones); layers of
    another kind (sliding windows) are left as transformers makes them."""
    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer(reserve) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


__all__ = ["GrowingLayer", "growing_cache"]
