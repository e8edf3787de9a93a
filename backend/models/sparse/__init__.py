"""Our own sparse voxel layer in plain PyTorch (CPU and CUDA), with TRELLIS's exact semantics.

Replaces upstream's spconv / flash-attn / xformers dependencies for the TRELLIS family (and
later TRELLIS.2). Modules:

- ``tensor``: ``SparseTensor`` (feats, int32 ``[b, x, y, z]`` coords, per-sample layout, a cache
  shared per coordinate set) and ``sparse_cat``;
- ``conv``: ``SparseConv3d``, the submanifold convolution (spconv's ``[Co, K, K, K, Ci]`` weight
  under ``conv.weight``), neighbours from sorted voxel keys, chunked gather + GEMM;
- ``spatial``: ``SparseDownsample`` (upstream's sum/(n+1) pooling), ``SparseUpsample``,
  ``SparseSubdivide``;
- ``attention``: full varlen, cross and swin-window attention on SDPA, and ``SparseTokens``
  (the sparse token layout for the shared transformer blocks);
- ``norm``: ``LayerNorm32``, ``SparseGroupNorm32``;
- ``modules``: ``SparseLinear``, ``SparseSiLU``, ``SparseResBlock3d``, ``SparseSubdivideBlock3d``.
"""

from backend.models.sparse.attention import (
    SparseTokens,
    sparse_cross_attention,
    sparse_full_attention,
    sparse_windowed_attention,
)
from backend.models.sparse.conv import SparseConv3d, submanifold_conv3d
from backend.models.sparse.modules import (
    SparseLinear,
    SparseResBlock3d,
    SparseSiLU,
    SparseSubdivideBlock3d,
)
from backend.models.sparse.norm import LayerNorm32, SparseGroupNorm32
from backend.models.sparse.spatial import SparseDownsample, SparseSubdivide, SparseUpsample
from backend.models.sparse.tensor import SparseTensor, sparse_cat

__all__ = [
    "LayerNorm32",
    "SparseConv3d",
    "SparseDownsample",
    "SparseGroupNorm32",
    "SparseLinear",
    "SparseResBlock3d",
    "SparseSiLU",
    "SparseSubdivide",
    "SparseSubdivideBlock3d",
    "SparseTensor",
    "SparseTokens",
    "SparseUpsample",
    "sparse_cat",
    "sparse_cross_attention",
    "sparse_full_attention",
    "sparse_windowed_attention",
    "submanifold_conv3d",
]
