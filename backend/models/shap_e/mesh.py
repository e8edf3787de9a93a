"""Turn one Shap-E latent into a coloured triangle mesh and a colour field, in our frame.

The latent is projected into the weights of the renderer's small STF MLP (signed distance +
colour). We evaluate the signed distance on a ``grid_size``^3 lattice over Shap-E's [-1, 1]^3
box in chunks (progress and cancel at every chunk), close it with a negative border as
upstream does, and polygonise with the checkpoint's own marching-cubes table (the renderer's
``mesh_decoder``). Unlike ``decode_to_mesh`` we place the padded grid's corners at their true
positions (upstream maps the padded grid onto the unpadded box, shrinking the object by
(g - 1) / (g + 1)), keep colours in sRGB as the MLP predicts them (upstream converts them to
linear), and hand out a colour field over a private copy of the MLP so the geometry pipeline can
bake a texture at any surface point.

Shap-E's objects stand on +Z with their front towards -Y (its pan cameras orbit the z axis);
the backend frame is +Y up, front +Z: (x, y, z) -> (x, z, -y), a proper rotation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from backend.cancellation import CancelToken
from backend.models.base import ProgressCallback

# Shap-E frame -> backend frame, applied to row vectors: p_backend = p_shap_e @ TO_BACKEND.
TO_BACKEND = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], np.float32)
QUERY_CHUNK = 32_768
# Faces per grid_size^2 above which the "surface" fills the volume. A closed surface spanning
# the box polygonises to about 7 g^2 faces (a sphere of radius g/2 cells) and a very intricate
# one to a few times that; a field that changes sign throughout, as untrained weights give,
# makes about 150-240 g^2 (measured: full-size random renderer, 681 k faces at g = 64; tiny
# random pipeline, 3.9 M at g = 128), which the geometry pipeline then spends minutes on.
VOLUME_FILLING_FACES_PER_CELL2 = 60.0


@dataclass
class ShapEMesh:
    """vertices (n, 3) float32 and faces (m, 3) int64 in the backend frame; colours sRGB."""

    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray  # (n, 3) float32 in [0, 1]
    color_field: Callable[[np.ndarray], np.ndarray]


def _project_mlp(renderer: torch.nn.Module, latent: torch.Tensor) -> torch.nn.Module:
    """A copy of the renderer's MLP carrying the weights ``latent`` (1, tokens, d) encodes."""
    mlp = copy.deepcopy(renderer.mlp)
    projected = renderer.params_proj(latent)
    state = mlp.state_dict()
    for name in state:
        key = f"nerstf.{name}"
        if key in projected:
            state[name] = projected[key].squeeze(0).to(state[name].dtype)
    mlp.load_state_dict(state)
    return mlp.eval()


def _query(mlp: torch.nn.Module, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(k, 3) Shap-E-frame points -> (signed distance (k,), sRGB colour (k, 3)), float32."""
    out = mlp(position=points[None], direction=None, ts=None, nerf_level="fine",
              rendering_mode="stf")
    return out.signed_distance[0, :, 0].float(), out.channels[0].float()


def lattice_points(grid_size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(grid_size^3, 3) points of the [-1, 1]^3 lattice, x slowest, z fastest."""
    axis = torch.linspace(-1.0, 1.0, grid_size, device=device, dtype=dtype)
    xs, ys, zs = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([xs, ys, zs], dim=-1).reshape(-1, 3)


@torch.no_grad()
def latent_to_mesh(
    renderer: torch.nn.Module,
    latent: torch.Tensor,
    grid_size: int,
    progress: ProgressCallback,
    cancel: CancelToken,
    stage: str = "mesh",
) -> ShapEMesh:
    """Extract the surface of ``latent`` (tokens, d) at ``grid_size``^3 with vertex colours."""
    device = latent.device
    renderer_dtype = next(renderer.parameters()).dtype
    mlp = _project_mlp(renderer, latent[None].to(renderer_dtype))
    dtype = next(mlp.parameters()).dtype
    points = lattice_points(grid_size, device, dtype)
    chunks = range(0, len(points), QUERY_CHUNK)
    total = len(chunks) + 1
    sdf = torch.empty(len(points), device=device, dtype=torch.float32)
    for index, start in enumerate(chunks):
        cancel.raise_if_cancelled()
        sdf[start : start + QUERY_CHUNK] = _query(mlp, points[start : start + QUERY_CHUNK])[0]
        progress(stage, index + 1, total, "evaluating the signed distance")
    field = torch.full((grid_size + 2,) * 3, -1.0, device=device)
    field[1:-1, 1:-1, 1:-1] = sdf.reshape((grid_size,) * 3)
    step = 2.0 / (grid_size - 1)
    lower = torch.full((3,), -1.0 - step, device=device)
    extent = torch.full((3,), 2.0 + 2 * step, device=device)
    raw = renderer.mesh_decoder(field, lower, extent)
    vertices = raw.verts.float()
    faces = raw.faces.long()
    colors = torch.empty((len(vertices), 3), device=device)
    for start in range(0, len(vertices), QUERY_CHUNK):
        part = vertices[start : start + QUERY_CHUNK].to(dtype)
        colors[start : start + QUERY_CHUNK] = _query(mlp, part)[1]
    cancel.raise_if_cancelled()
    progress(stage, total, total, "surface extracted")
    vertices_np = vertices.cpu().numpy() @ TO_BACKEND
    faces_np = faces.cpu().numpy()
    faces_np = _outward(vertices_np, faces_np)
    return ShapEMesh(
        vertices=vertices_np.astype(np.float32),
        faces=faces_np,
        vertex_colors=colors.clamp(0, 1).cpu().numpy().astype(np.float32),
        color_field=_colour_field(mlp, device, dtype),
    )


def is_volume_filling(face_count: int, grid_size: int) -> bool:
    """Whether ``face_count`` faces at ``grid_size``^3 are a sign-changing noise, not a surface."""
    return face_count > VOLUME_FILLING_FACES_PER_CELL2 * grid_size**2


def _outward(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Reverse the winding if the closed surface's signed volume is negative (inward)."""
    if len(faces) == 0:
        return faces
    a, b, c = (vertices[faces[:, i]].astype(np.float64) for i in range(3))
    signed_volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0
    return faces[:, ::-1].copy() if signed_volume < 0 else faces


def _colour_field(
    mlp: torch.nn.Module, device: torch.device, dtype: torch.dtype
) -> Callable[[np.ndarray], np.ndarray]:
    """points (k, 3) in the backend frame -> (k, 3) float32 sRGB from the STF colour head."""

    @torch.no_grad()
    def colour(points: np.ndarray) -> np.ndarray:
        shap_e_points = np.asarray(points, np.float32) @ TO_BACKEND.T  # inverse rotation
        result = np.empty((len(shap_e_points), 3), np.float32)
        for start in range(0, len(shap_e_points), QUERY_CHUNK):
            chunk = torch.from_numpy(shap_e_points[start : start + QUERY_CHUNK])
            rgb = _query(mlp, chunk.to(device=device, dtype=dtype))[1]
            result[start : start + QUERY_CHUNK] = rgb.clamp(0, 1).cpu().numpy()
        return result

    return colour
