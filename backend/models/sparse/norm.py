"""Normalisations computed in float32 and returned in the input's dtype (upstream's ``*32``).

``LayerNorm32`` works on any tensor's last axis (per voxel or per token); ``SparseGroupNorm32``
normalises each batch element of a ``SparseTensor`` over all its voxels, like ``nn.GroupNorm``
on a (1, C, N) view of that element (upstream's ``sp.SparseGroupNorm32``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from backend.models.sparse import fastpath
from backend.models.sparse.tensor import SparseTensor

HALF_TYPES = (torch.float16, torch.bfloat16)


def _float(parameter: Tensor | None) -> Tensor | None:
    # The affines are stored in fp32; a model cast wholesale to half still normalises in fp32.
    return None if parameter is None else parameter.float()


class LayerNorm32(nn.LayerNorm):
    """``nn.LayerNorm`` over the last axis, computed in float32."""

    def forward(self, x: Tensor) -> Tensor:
        if self.weight is None and x.dtype in HALF_TYPES and fastpath.enabled():
            # The kernel reads half and computes in float32 itself: the float32 copy in and the
            # cast out (two passes over the tokens) are only rounding-equal extra traffic.
            return F.layer_norm(x, self.normalized_shape, None, None, self.eps)
        out = F.layer_norm(
            x.float(), self.normalized_shape, _float(self.weight), _float(self.bias), self.eps
        )
        return out.to(x.dtype)


class SparseGroupNorm32(nn.GroupNorm):
    """GroupNorm over each batch element's voxels (keys ``weight``/``bias``), in float32."""

    def forward(self, x: SparseTensor) -> SparseTensor:
        parts = []
        for rows in x.layout:
            element = x.feats[rows].float().t().unsqueeze(0)
            if element.shape[2] == 0:
                parts.append(element[0].t())
                continue
            normed = F.group_norm(
                element, self.num_groups, _float(self.weight), _float(self.bias), self.eps
            )
            parts.append(normed[0].t())
        feats = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
        return x.replace(feats.to(x.dtype).contiguous())
