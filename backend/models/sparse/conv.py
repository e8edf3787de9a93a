"""Submanifold sparse 3D convolution with spconv's weight layout, in plain PyTorch.

Semantics of upstream's ``sp.SparseConv3d(ci, co, k)`` (an spconv ``SubMConv3d``, stride 1):
output sites are the input sites, in the same order, and

    out[p] = bias + sum over (a, b, c) in [0, K)^3 of  W[:, a, b, c, :] @ in[p + (a, b, c) - K//2]

summing only over active input sites, with the weight stored ``[Co, K, K, K, Ci]`` (spconv's
KRSC layout; kernel axes in coordinate order x, y, z) under ``<layer>.conv.weight`` /
``<layer>.conv.bias`` like upstream's wrapper. That equals ``F.conv3d`` of the dense grid with
``W.permute(0, 4, 1, 2, 3)`` and padding K//2, read back at the active sites.

Except K = 1 in ``SparseConv3d`` (the spconv layer): spconv computes a 1x1x1 conv as
``feats @ W.view(Ci, Co)``, a reinterpretation of the contiguous ``[Co, 1, 1, 1, Ci]`` buffer, not
its transpose (``pointwise_weight``). Upstream's networks run that (the mesh decoder's subdivide
skip connections), so ours does too. ``submanifold_conv3d`` itself keeps the plain formula for
every K (TRELLIS.2's FlexGEMM convs use it).

Neighbours come from sorted voxel keys + ``searchsorted`` (one (N, K^3) map per coordinate set,
cached on the tensor); the product gathers each chunk of rows' K^3 neighbour rows (a zero row
stands in for a missing one) and multiplies once by the (K^3 Ci, Co) weight, so the whole kernel
sum accumulates inside one GEMM (in fp32 on GPU for fp16 inputs) and no dense grid or full
im2col is ever built: a chunk holds at most ``CHUNK_ELEMENTS`` gathered values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from backend.models.sparse.tensor import SparseTensor

# Gathered values per chunk of output rows: 2^24 floats = 64 MiB in fp32, enough to keep the
# GEMM efficient while bounding the transient memory at 256^3 (1.3 M voxels x 27 x 192).
CHUNK_ELEMENTS = 1 << 24


def kernel_offsets(kernel_size: int, device: torch.device | None = None) -> Tensor:
    """(K^3, 3) int64 offsets in flat-kernel order ``v = a K^2 + b K + c`` (x slowest)."""
    if kernel_size % 2 != 1:
        raise ValueError(f"submanifold kernels must be odd, got {kernel_size}")
    axis = torch.arange(kernel_size, device=device) - kernel_size // 2
    grid = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack(grid, dim=-1).reshape(-1, 3)


def build_neighbour_map(coords: Tensor, kernel_size: int) -> Tensor:
    """(N, K^3) row of each site's neighbour at each kernel offset; N where there is none.

    coords (N, 4) int32 ``[b, x, y, z]`` (any order, unique sites). Keys are the sites'
    coordinates shifted by K//2 and packed row-major into int64 with K//2 of room on every
    side, so a neighbour's key is the site's key plus a constant per offset and never aliases.
    """
    n = coords.shape[0]
    index_dtype = torch.int32 if n < 2**31 - 1 else torch.int64
    volume = kernel_size**3
    if n == 0:
        return torch.empty(0, volume, dtype=index_dtype, device=coords.device)
    pad = kernel_size // 2
    c = coords.long()
    c[:, 1:] += pad
    extent = (c[:, 1:].amax(dim=0) + pad + 1).tolist()
    key = ((c[:, 0] * extent[0] + c[:, 1]) * extent[1] + c[:, 2]) * extent[2] + c[:, 3]
    sorted_keys, order = torch.sort(key)
    offsets = kernel_offsets(kernel_size, coords.device)
    delta = (offsets[:, 0] * extent[1] + offsets[:, 1]) * extent[2] + offsets[:, 2]
    neighbours = torch.empty(n, volume, dtype=index_dtype, device=coords.device)
    missing = torch.full((n,), n, dtype=torch.int64, device=coords.device)
    for v in range(volume):
        wanted = key + delta[v]
        position = torch.searchsorted(sorted_keys, wanted).clamp_(max=n - 1)
        found = sorted_keys[position] == wanted
        neighbours[:, v] = torch.where(found, order[position], missing)
    return neighbours


def neighbour_map(x: SparseTensor, kernel_size: int) -> Tensor:
    """The (N, K^3) neighbour map of ``x``'s coordinates, built once per coordinate set."""
    key = f"submanifold_{kernel_size}"
    neighbours = x.cache.get(key)
    if neighbours is None:
        neighbours = build_neighbour_map(x.coords, kernel_size)
        x.cache[key] = neighbours
    return neighbours


def pointwise_weight(weight: Tensor) -> Tensor:
    """(Co, 1, 1, 1, Ci) -> the (Co, Ci) matrix spconv's 1x1x1 conv applies.

    spconv (``SubMConv3d`` with ``conv1x1``, KRSC layout) multiplies by ``weight.view(Ci, Co)``:
    the stored bytes read as a (Ci, Co) matrix, which mixes rows and columns unless Ci == 1."""
    co, ci = weight.shape[0], weight.shape[-1]
    return weight.reshape(ci, co).t()


def submanifold_conv3d(
    feats: Tensor,
    neighbours: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> Tensor:
    """(N, Ci) features, (N, K^3) neighbour map, weight (Co, K, K, K, Ci) -> (N, Co)."""
    n, ci = feats.shape
    co = weight.shape[0]
    volume = neighbours.shape[1]
    flat_weight = weight.reshape(co, volume * ci)
    if volume == 1:
        return F.linear(feats, flat_weight, bias)
    padded = torch.cat([feats, feats.new_zeros(1, ci)])
    rows = max(1, chunk_elements // (volume * ci))
    if n <= rows:
        columns = padded.index_select(0, neighbours.reshape(-1)).view(n, volume * ci)
        return F.linear(columns, flat_weight, bias)
    out = feats.new_empty(n, co)
    transposed = flat_weight.t()
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        columns = padded.index_select(0, neighbours[start:stop].reshape(-1))
        columns = columns.view(stop - start, volume * ci)
        if bias is None:
            torch.mm(columns, transposed, out=out[start:stop])
        else:
            torch.addmm(bias, columns, transposed, out=out[start:stop])
    return out


class SubmanifoldKernel(nn.Module):
    """The parameters of one submanifold conv, named like spconv's ``SubMConv3d``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        k = kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, k, k, k, in_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        bound = (in_channels * k**3) ** -0.5
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)


class SparseConv3d(nn.Module):
    """Submanifold conv (stride 1): keys ``conv.weight`` (Co, K, K, K, Ci) and ``conv.bias``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"submanifold kernels must be odd, got {kernel_size}")
        self.conv = SubmanifoldKernel(in_channels, out_channels, kernel_size, bias)

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def forward(self, x: SparseTensor) -> SparseTensor:
        kernel_size = self.conv.kernel_size
        neighbours = neighbour_map(x, kernel_size) if kernel_size > 1 else None
        if neighbours is None:
            weight = pointwise_weight(self.conv.weight)
            return x.replace(F.linear(x.feats, weight, self.conv.bias))
        return x.replace(submanifold_conv3d(x.feats, neighbours, self.conv.weight, self.conv.bias))
