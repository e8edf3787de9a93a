"""Hunyuan3D-Paint's camera set, condition renders and multi-view baking, in torch.

The paint model sees the mesh from six orthographic cameras (front, left, back, right, top,
bottom: azimuth/elevation below, upstream's set and view weights), after the mesh is centred and
scaled so its bounding sphere has diameter 1.15. :func:`render_view` gives the normal and
position maps the multi-view diffusion model is conditioned on; :func:`bake_views` projects
generated view images back onto a UV atlas: a texel takes a view's colour where its surface
point is visible from that camera (depth test against the view's depth map) and faces it at
less than 75 degrees, weighted by ``view_weight * cos(angle)^4``; :func:`inpaint` fills the texels
no view saw by pull-push over a mip pyramid.

Frames: the backend's (+Y up, the subject facing +Z). Azimuth 0 looks at the front from +Z,
azimuth 90 from +X (the subject's left), elevation 90 from above. Images are (h, w, c), row 0 at
the top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from backend.models.hunyuan3d.paint_raster import Raster, rasterize

CAMERA_AZIMUTHS = (0.0, 90.0, 180.0, 270.0, 0.0, 180.0)
CAMERA_ELEVATIONS = (0.0, 0.0, 0.0, 0.0, 90.0, -90.0)
VIEW_WEIGHTS = (1.0, 0.1, 0.5, 0.1, 0.05, 0.05)
ORTHO_SCALE = 1.2  # the view spans [-0.6, 0.6] in both directions
CAMERA_DISTANCE = 1.45
MESH_DIAMETER = 1.15
BAKE_EXPONENT = 4
MAX_ANGLE_DEG = 75.0
DEPTH_TOLERANCE = 0.01  # in normalised-mesh units (the mesh spans ~1.15)


@dataclass(frozen=True)
class Camera:
    """An orthographic camera: ``rotation`` (3, 3) rows = right, up, backward (world)."""

    azimuth: float
    elevation: float
    rotation: Tensor
    position: Tensor

    @classmethod
    def orbit(cls, azimuth: float, elevation: float, device: torch.device | str = "cpu") -> Camera:
        a, e = math.radians(azimuth), math.radians(elevation)
        backward = torch.tensor(
            [math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)], device=device
        )
        up_hint = torch.tensor([0.0, 1.0, 0.0], device=device)
        if abs(math.cos(e)) < 1e-6:  # looking straight down or up: keep the front at the bottom
            up_hint = torch.tensor([0.0, 0.0, -math.copysign(1.0, math.sin(e))], device=device)
        right = torch.linalg.cross(up_hint, backward)
        right = right / right.norm()
        up = torch.linalg.cross(backward, right)
        rotation = torch.stack([right, up, backward])
        return cls(azimuth, elevation, rotation, backward * CAMERA_DISTANCE)

    def to_screen(self, points: Tensor, size: int) -> Tensor:
        """World points (n, 3) -> (n, 3): pixel x, pixel y (row 0 at top), depth (> 0)."""
        local = (points - self.position) @ self.rotation.T
        half = ORTHO_SCALE / 2
        x = (local[:, 0] + half) / ORTHO_SCALE * size
        y = (half - local[:, 1]) / ORTHO_SCALE * size
        return torch.stack([x, y, -local[:, 2]], 1)


def paint_cameras(device: torch.device | str = "cpu") -> list[Camera]:
    return [
        Camera.orbit(a, e, device) for a, e in zip(CAMERA_AZIMUTHS, CAMERA_ELEVATIONS, strict=True)
    ]


def normalise(vertices: Tensor) -> tuple[Tensor, Tensor, float]:
    """Centre on the bounding box and scale to the paint diameter -> (vertices, centre, scale)."""
    centre = (vertices.amax(0) + vertices.amin(0)) / 2
    radius = (vertices - centre).norm(dim=1).max()
    scale = float(MESH_DIAMETER / (2 * radius))
    return (vertices - centre) * scale, centre, scale


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted unit vertex normals (n, 3)."""
    corners = vertices[faces]
    face_normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = torch.zeros_like(vertices).index_add_(
        0, faces.reshape(-1), face_normals.repeat_interleave(3, 0)
    )
    return F.normalize(normals, dim=1)


@dataclass
class ViewRender:
    """Condition maps of one view: normal and position (h, w, 3) in [0, 1] (background 1), and
    the raster (for its depth map)."""

    normal: Tensor
    position: Tensor
    mask: Tensor
    raster: Raster


def render_view(vertices: Tensor, faces: Tensor, camera: Camera, size: int) -> ViewRender:
    """Render the paint conditions of a normalised mesh; world-space normals, as upstream."""
    raster = rasterize(camera.to_screen(vertices, size), faces, size, size)
    mask = raster.face >= 0
    normal = F.normalize(raster.interpolate(vertex_normals(vertices, faces), faces), dim=-1)
    normal = torch.where(mask[..., None], (normal + 1) / 2, torch.ones_like(normal))
    position = raster.interpolate(vertices, faces) + 0.5
    position = torch.where(mask[..., None], position.clamp(0, 1), torch.ones_like(position))
    return ViewRender(normal, position, mask, raster)


@dataclass
class Atlas:
    """Texels of a UV atlas that lie on the mesh: ``rows``/``cols`` (k,), their surface points
    and unit normals (k, 3); ``size`` texels per side."""

    rows: Tensor
    cols: Tensor
    points: Tensor
    normals: Tensor
    size: int


def atlas_texels(vertices: Tensor, faces: Tensor, uvs: Tensor, size: int) -> Atlas:
    """Rasterise the UV layout (uvs (n, 2), glTF convention: v down from the top)."""
    screen = torch.cat([uvs * size, torch.ones_like(uvs[:, :1])], 1)
    raster = rasterize(screen, faces, size, size)
    rows, cols = torch.nonzero(raster.face >= 0, as_tuple=True)
    points = raster.interpolate(vertices, faces)[rows, cols]
    normals = F.normalize(
        raster.interpolate(vertex_normals(vertices, faces), faces)[rows, cols], dim=-1
    )
    return Atlas(rows, cols, points, normals, size)


def project_view(
    atlas: Atlas, image: Tensor, camera: Camera, depth: Tensor
) -> tuple[Tensor, Tensor]:
    """One view's colours (k, c) at the atlas texels and their weights (k,), 0 where unseen."""
    size = image.shape[0]
    screen = camera.to_screen(atlas.points, size)
    col = screen[:, 0].floor().long().clamp(0, size - 1)
    row = screen[:, 1].floor().long().clamp(0, size - 1)
    on_image = (
        (screen[:, 0] >= 0) & (screen[:, 0] < size) & (screen[:, 1] >= 0) & (screen[:, 1] < size)
    )
    visible = on_image & (screen[:, 2] <= depth[row, col] + DEPTH_TOLERANCE)
    cosine = (atlas.normals * camera.rotation[2]).sum(1)
    facing = cosine > math.cos(math.radians(MAX_ANGLE_DEG))
    weight = torch.where(
        visible & facing, cosine.clamp(min=0) ** BAKE_EXPONENT, torch.zeros_like(cosine)
    )
    # bilinear sample of the view image at the projected points
    grid = torch.stack([screen[:, 0] / size * 2 - 1, screen[:, 1] / size * 2 - 1], 1)
    colours = F.grid_sample(
        image.permute(2, 0, 1)[None], grid[None, :, None, :], mode="bilinear", align_corners=False
    )[0, :, :, 0].T
    return colours, weight


def bake_views(
    atlas: Atlas,
    images: list[Tensor],
    cameras: list[Camera],
    depths: list[Tensor],
    weights: tuple[float, ...],
) -> tuple[Tensor, Tensor]:
    """Blend views onto the atlas -> texture (size, size, c) and seen mask (size, size)."""
    channels = images[0].shape[-1]
    total = torch.zeros((len(atlas.rows), channels), device=atlas.points.device)
    weight_sum = torch.zeros(len(atlas.rows), device=atlas.points.device)
    for image, camera, depth, view_weight in zip(images, cameras, depths, weights, strict=True):
        colours, weight = project_view(atlas, image, camera, depth)
        total += colours * (weight * view_weight)[:, None]
        weight_sum += weight * view_weight
    seen = weight_sum > 1e-8
    texture = torch.zeros((atlas.size, atlas.size, channels), device=atlas.points.device)
    mask = torch.zeros((atlas.size, atlas.size), dtype=torch.bool, device=atlas.points.device)
    rows, cols = atlas.rows[seen], atlas.cols[seen]
    texture[rows, cols] = total[seen] / weight_sum[seen, None]
    mask[rows, cols] = True
    return texture, mask


def inpaint(texture: Tensor, mask: Tensor) -> Tensor:
    """Fill texels where ``mask`` is False from their known surroundings (pull-push).

    texture (h, w, c), mask (h, w) bool -> (h, w, c); known texels are kept exactly.
    """
    if mask.all() or not mask.any():
        return texture.clone()
    image = texture.permute(2, 0, 1)[None] * mask[None, None]
    weight = mask[None, None].to(texture.dtype)
    pyramid = [(image, weight)]
    while min(image.shape[-2:]) > 1:
        image = F.avg_pool2d(image, 2, ceil_mode=True) * 4
        weight = F.avg_pool2d(weight, 2, ceil_mode=True) * 4
        pyramid.append((image, weight))
    filled = pyramid[-1][0] / pyramid[-1][1].clamp(min=1e-8)
    for image, weight in reversed(pyramid[:-1]):
        coarse = F.interpolate(filled, size=image.shape[-2:], mode="bilinear", align_corners=False)
        known = weight.clamp(max=1)
        filled = image / weight.clamp(min=1e-8) * known + coarse * (1 - known)
    out = filled[0].permute(1, 2, 0)
    return torch.where(mask[..., None], texture, out)
