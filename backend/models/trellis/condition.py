"""Conditions prepared once per sampling run for the flows' cross attention (exact shortcuts).

Every step of a sampling run attends to the same condition tokens, so each block's keys and
values (``to_kv`` and the keys' RMS norm) are computed once here instead of at every step.

A sample whose condition tokens are all equal -- the zeros negative condition of TRELLIS's and
TRELLIS.2's image models -- has all keys equal and all values equal: the softmax is uniform
whatever the query, and the attention output is that one value row for every token. Its cross
attention is then one vector per block, ``to_out(v)``, computed once; the norm before it, the
query projection, the attention and the per-token output projection are skipped for that
sample. When a guided step batches the conditional and unconditional passes, only the cross
attention is split by sample (runs of consecutive samples); everything else stays batched.
Which samples are constant is read from the data (one host sync per prepared condition), so a
negative that is not constant (a text model's empty prompt) simply attends as before.

``ConditionCache`` is what the velocity wrappers hold: one per sampling run, it maps a
condition tensor (by identity; the sampler passes the same tensor objects at every step) to its
``PreparedCondition``. With ``sparse.fastpath`` off it hands the tensor back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from backend.models.sparse import fastpath

if TYPE_CHECKING:
    from backend.models.trellis.transformer import MultiHeadCrossAttention, TokenLayout


def constant_samples(cond: Tensor) -> tuple[bool, ...]:
    """Per sample of ``cond`` (B, L, C): are all its L tokens equal? (one host sync)"""
    return tuple((cond == cond[:, :1]).flatten(1).all(dim=1).tolist())


def runs(flags: Sequence[bool]) -> Iterator[tuple[int, int, bool]]:
    """(start, stop, flag) of each run of equal consecutive flags."""
    start = 0
    for index in range(1, len(flags) + 1):
        if index == len(flags) or flags[index] != flags[start]:
            yield start, index, flags[start]
            start = index


@dataclass(frozen=True, eq=False)
class CrossContext:
    """One block's cross-attention inputs for a batch of conditions, computed once.

    ``k``/``v`` (B, L, H, D) for every sample; ``constant`` (B, C): the block's cross-attention
    output of each sample whose tokens are all equal (``is_constant``); rows of the other
    samples are unused."""

    k: Tensor
    v: Tensor
    constant: Tensor
    is_constant: tuple[bool, ...]

    @classmethod
    def build(
        cls, attention: MultiHeadCrossAttention, cond: Tensor, is_constant: tuple[bool, ...]
    ) -> CrossContext:
        k, v = attention.keys_values(cond)
        # Uniform weights over equal values: the attention output is the value row itself.
        constant = attention.to_out(v[:, 0].flatten(-2))
        return cls(k, v, constant, is_constant)

    def add_attention(
        self, x: Tensor, norm: nn.Module, attention: MultiHeadCrossAttention, tokens: TokenLayout
    ) -> Tensor:
        """``x + attention(norm(x))`` to this context; x dense (B, L, C) or sparse (N, C)."""
        if all(self.is_constant):
            return x + tokens.per_sample(self.constant)
        if not any(self.is_constant) or x.dim() != 3:
            # Sparse tokens of several samples with mixed conditions never occur in sampling
            # (one sample, or dense copies of it): they simply all attend.
            return x + attention.attend(norm(x), self.k, self.v, tokens)
        out = torch.empty_like(x)
        for start, stop, constant in runs(self.is_constant):
            rows = slice(start, stop)
            if constant:
                torch.add(x[rows], self.constant[rows].unsqueeze(1), out=out[rows])
            else:
                h = attention.attend(norm(x[rows]), self.k[rows], self.v[rows], tokens)
                torch.add(x[rows], h, out=out[rows])
        return out


class PreparedCondition:
    """A batch of conditions (B, L, Cc) with every block's ``CrossContext`` built once."""

    def __init__(self, cond: Tensor, blocks: Sequence[nn.Module], dtype: torch.dtype) -> None:
        cond = cond.to(dtype)
        self.shape = cond.shape
        is_constant = constant_samples(cond)
        self.contexts = [
            CrossContext.build(block.cross_attn, cond, is_constant) for block in blocks
        ]


def block_contexts(
    cond: Tensor | PreparedCondition, blocks: Sequence[nn.Module], dtype: torch.dtype
) -> list[Tensor] | list[CrossContext]:
    """What each block of a flow gets as its context: the prepared ones, or the tokens."""
    if isinstance(cond, PreparedCondition):
        if len(cond.contexts) != len(blocks):
            raise ValueError("a condition prepared for another network")
        return cond.contexts
    return [cond.to(dtype)] * len(blocks)


class ConditionCache:
    """The prepared conditions of one sampling run of ``flow``, by tensor identity.

    A cached tensor is held (its id cannot be reused meanwhile) and re-prepared if modified in
    place. A module without ``blocks`` (a wrapper in a test, a callable) gets tensors as
    they are."""

    def __init__(self, flow: nn.Module) -> None:
        self.flow = flow
        self._entries: dict[int, tuple[Tensor, int, PreparedCondition]] = {}

    def __call__(self, cond: Tensor) -> Tensor | PreparedCondition:
        blocks = getattr(self.flow, "blocks", None)
        if not fastpath.enabled() or blocks is None or not len(blocks):
            return cond
        entry = self._entries.get(id(cond))
        if entry is None or entry[0] is not cond or entry[1] != cond._version:
            entry = (cond, cond._version, PreparedCondition(cond, blocks, self.flow.dtype))
            self._entries[id(cond)] = entry
        return entry[2]
