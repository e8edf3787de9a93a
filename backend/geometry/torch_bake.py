"""The per-texel steps of bake.py on a torch device: tangent-space normals and dilation.

With ``bake(..., device=...)`` the splat already runs in torch (transfer_torch.py); these are
the two steps after it that touch every texel: encoding the high-resolution normal in each
texel's MikkTSpace frame (bake._encode_normals, the same arithmetic in float64) and growing the
maps past chart borders (torch_dilate.py). Same results as the compiled CPU path.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def encode_normals(
    high: Any, face_id: Any, flat: np.ndarray, splat_face: Any, size: int,
    uvs: np.ndarray, faces: np.ndarray, normals: np.ndarray, tangents: np.ndarray, device: str,
) -> np.ndarray:  # fmt: skip
    """``bake._encode_normals`` on ``device``: world normals high (k, 3) of texels ``flat``
    (k,) -> (k, 3) float32 in [0, 1]; see bake._tangent_space for the frame. face_id (size,
    size) is the atlas raster, numpy or a tensor on the device (torch_raster.py)."""
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
    uv = put(uvs, torch.float64)[corner]  # (k, 3, 2)
    e1, e2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    dx, dy = px - uv[:, 0, 0], py - uv[:, 0, 1]
    det = e1[:, 0] * e2[:, 1] - e2[:, 0] * e1[:, 1]
    det = torch.where(det.abs() < 1e-30, torch.full_like(det, 1e-30), det)
    w1 = (dx * e2[:, 1] - e2[:, 0] * dy) / det
    w2 = (e1[:, 0] * dy - dx * e1[:, 1]) / det
    weight = torch.stack([1.0 - w1 - w2, w1, w2], dim=1)[:, :, None]
    n = (weight * put(normals, torch.float64)[corner]).sum(dim=1)
    frame = (weight * put(tangents, torch.float64)[corner]).sum(dim=1)
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
    return encoded.float().cpu().numpy()
