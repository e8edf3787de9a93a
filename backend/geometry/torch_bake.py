"""The per-texel steps of bake.py on a torch device: tangent-space normals and bytes.

With ``bake(..., device=...)`` the splat already runs in torch (transfer_torch.py); these are
steps after it that touch every texel: encoding the high-resolution normal in each texel's
MikkTSpace frame (bake._encode_normals, the same arithmetic in float64) and quantising the
texels to the maps' bytes (bake._to_uint8's rounding), before the maps grow past chart borders
(torch_dilate.py). Same results as the compiled CPU path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backend.geometry.torch_gather import rows


def encode_normals(
    high: Any, face_id: Any, flat: Any, splat_face: Any, size: int,
    uvs: np.ndarray, faces: np.ndarray, normals: np.ndarray, tangents: np.ndarray, device: str,
) -> np.ndarray:  # fmt: skip
    """``bake._encode_normals`` on ``device``: world normals high (k, 3) of texels ``flat``
    (k,) -> (k, 3) float32 in [0, 1]; see bake._tangent_space for the frame. face_id (size,
    size) is the atlas raster, numpy or a tensor on the device (torch_raster.py)."""
    return encode_normals_tensor(
        high, face_id, flat, splat_face, size, uvs, faces, normals, tangents, device
    ).cpu().numpy()


def encode_normals_tensor(
    high: Any, face_id: Any, flat: Any, splat_face: Any, size: int,
    uvs: np.ndarray, faces: np.ndarray, normals: np.ndarray, tangents: np.ndarray, device: str,
) -> Any:  # fmt: skip
    """:func:`encode_normals` left on the device: (k, 3) float32 tensor (the bake quantises
    it there, torch_bake.quantize)."""
    import torch  # optional dependency: only the torch geometry path needs it

    dev = torch.device(device)

    def put(array: Any, dtype: Any) -> Any:  # numpy, or a tensor already on the device
        if isinstance(array, np.ndarray):
            array = np.ascontiguousarray(array)
        return torch.as_tensor(array, device=dev).to(dtype)

    flat_t = put(flat, torch.int64)
    face = put(face_id.reshape(-1), torch.int64)[flat_t]
    face = torch.where(face < 0, put(splat_face, torch.int64), face)
    px = ((flat_t % size).double() + 0.5) / size
    py = ((flat_t // size).double() + 0.5) / size
    corner = put(faces, torch.int64)[face]  # (k, 3)
    uv = rows(put(uvs, torch.float64), corner)  # (k, 3, 2)
    e1, e2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    dx, dy = px - uv[:, 0, 0], py - uv[:, 0, 1]
    det = e1[:, 0] * e2[:, 1] - e2[:, 0] * e1[:, 1]
    det = torch.where(det.abs() < 1e-30, torch.full_like(det, 1e-30), det)
    w1 = (dx * e2[:, 1] - e2[:, 0] * dy) / det
    w2 = (e1[:, 0] * dy - dx * e1[:, 1]) / det
    weight = torch.stack([1.0 - w1 - w2, w1, w2], dim=1)[:, :, None]
    n = (weight * put(normals, torch.float64)[corner]).sum(dim=1)
    frame = (weight * rows(put(tangents, torch.float64), corner)).sum(dim=1)
    t, w = frame[:, :3], frame[:, 3]
    sign = torch.where(w < 0, -1.0, 1.0)[:, None]
    b = sign * torch.linalg.cross(n, t)
    # Solve [t b n] x = high via the dual basis (b x n, n x t, t x b) over the determinant.
    bn, nt, tb = torch.linalg.cross(b, n), torch.linalg.cross(n, t), torch.linalg.cross(t, b)
    frame_det = (t * bn).sum(dim=1)
    h = put(high, torch.float64)
    safe = torch.where(frame_det.abs() < 1e-20, torch.ones_like(frame_det), frame_det)
    x = torch.stack(
        [(bn * h).sum(1) / safe, (nt * h).sum(1) / safe, ((tb * h).sum(1) / safe).clamp(min=0)],
        dim=1,
    )  # never into the surface
    length = x.norm(dim=1)
    flat_normal = torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64, device=dev)
    encoded = x / length.clamp(min=1e-300)[:, None] * 0.5 + 0.5
    degenerate = (frame_det.abs() < 1e-20) | (length < 1e-20)
    encoded = torch.where(degenerate[:, None], flat_normal, encoded)
    return encoded.float()


def quantize(blocks: list[Any], device: str) -> Any:
    """``bake._to_uint8`` on ``device``: blocks (k, c_i) float, numpy or tensors, side by side
    -> (k, sum c_i) uint8 tensor, the same bytes: each value taken as float32, times 255 in
    float64 (exact: 24 + 8 bits), NaN and below 0 to 0, from 255 up to 255, else rounded half
    to even (np.rint's and torch.round's rule). The maps' bytes are made where they are
    dilated, from the texels left there: no float texels cross to the host."""
    import torch

    dev = torch.device(device)
    columns = []
    for block in blocks:
        if isinstance(block, np.ndarray):  # a host answer (texture, numpy-only field)
            block = np.ascontiguousarray(block, dtype=np.float32)
        value = torch.as_tensor(block, device=dev).float().double() * 255.0
        byte = torch.where(value >= 255.0, 255.0, torch.round(value))
        columns.append(torch.where(value > 0.0, byte, 0.0).to(torch.uint8))
    return torch.cat(columns, dim=1)
