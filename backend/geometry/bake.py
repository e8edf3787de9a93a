"""Stage 4, bake: texture maps for the low-resolution mesh from the high-resolution source.

Base colour comes from the source's vertex colours, its own texture (sampled at the
interpolated source UV), the model's colour field queried at each texel's point on the
high-resolution surface, or the model's painted views projected there (views.py): a real
texture either way, not vertex colours. The normal map is
tangent-space, MikkTSpace convention, holding the high-resolution normal against the frames of
tangents.py. Roughness / metallic come from the material field when there is one, otherwise they
stay constants of the material. Every map is dilated past chart borders. The transfer itself is
transfer.py's splat: one pass over the high-resolution triangles.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from backend.geometry import dilate, raster, tangents, tolerances, transfer, views
from backend.geometry.raw_asset import PaintedViews, PointField
from backend.geometry.torch_host import to_numpy


@dataclass
class BakeSource:
    """The high-resolution surface. vertices (N, 3), faces (M, 3); vertex_colors (N, 3|4) in
    [0, 1]; uvs (N, 2) glTF convention with texture (h, w, 3|4) uint8; fields and views as in
    RawAsset (views, when given, are the base colour)."""

    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray | None = None
    uvs: np.ndarray | None = None
    texture: np.ndarray | None = None
    color_field: PointField | None = None
    material_field: PointField | None = None
    views: PaintedViews | None = None
    alpha_field: PointField | None = None


@dataclass
class BakeTarget:
    """The UV-mapped low-resolution mesh: vertices (n, 3), faces (m, 3), uvs (n, 2), normals
    (n, 3), tangents (n, 4), chart (m,) per face, weld (n,) ids joining seam copies."""

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    normals: np.ndarray
    tangents: np.ndarray
    chart: np.ndarray
    weld: np.ndarray


@dataclass
class BakedMaps:
    """base_color (s, s, 3|4) uint8 sRGB, normal (s, s, 3) uint8, metallic_roughness (s, s, 3)
    uint8 (G roughness, B metallic) or None; coverage is the share of texels baked;
    views_seen the share of baked texels some painted view sees (None without views)."""

    base_color: np.ndarray
    normal: np.ndarray
    metallic_roughness: np.ndarray | None
    coverage: float
    timings_s: dict[str, float] = field(default_factory=dict)
    views_seen: float | None = None


def bake(
    source: BakeSource,
    target: BakeTarget,
    size: int,
    normal_map: bool = True,
    near_vertex: np.ndarray | None = None,
    device: str | None = None,
    source_normals: np.ndarray | None = None,
    prepared: DevicePrep | None = None,
) -> BakedMaps:
    """Bake every map at ``size`` x ``size`` texels.

    ``near_vertex`` (N,) optionally names, for each source vertex, a target vertex near it (the
    decimator's merge map gives this for free); otherwise a KD-tree finds the nearest three.
    ``device`` (a torch device name) runs the splat and the fields' torch forms with torch
    there (transfer_torch.py); None keeps the compiled CPU path. ``source_normals`` (N, 3)
    float32 are ``tangents.vertex_normals`` of the source when the caller made them already
    (the pipeline does, beside the decimation); the CPU path makes them otherwise.
    ``prepared`` (device path) holds the closest faces and splat columns made earlier by
    :func:`prepare_on_device` (the pipeline makes them beside the UV unwrap).
    """
    clock = _Clock()
    if prepared is not None:
        face, dist, attributes = prepared.face, prepared.dist, prepared.attributes
    elif near_vertex is not None:
        near = np.asarray(near_vertex, dtype=np.int64)
    else:  # search over welded positions, so a seam's copies do not crowd out other candidates
        from scipy.spatial import cKDTree  # here: the pipeline passes near_vertex, no import

        first = np.unique(target.weld, return_index=True)[1]
        near = first[cKDTree(target.vertices[first]).query(source.vertices, k=3, workers=-1)[1]]
    if prepared is None and device is None:
        face, dist = transfer.closest_faces(
            source.vertices, near, target.vertices, target.faces, target.weld
        )
    elif prepared is None:  # answers stay on the device, where the splat reads them
        from backend.geometry import torch_closest

        face, dist = torch_closest.closest_faces(
            source.vertices, near, target.vertices, target.faces, target.weld, device
        )
    clock.lap("closest_faces")
    layout = _attribute_layout(source)
    if device is None:
        normals = source_normals
        if normals is None:
            normals = tangents.vertex_normals(source.vertices, source.faces)
        attributes = np.hstack([normals] + [a for _, a in layout]).astype(np.float32)
    elif prepared is None:  # the normals made where the splat reads them: the rest go up
        attributes = _device_attributes(source, layout, device)
    splat_args = (
        source.vertices, source.faces, attributes, face, dist,
        target.vertices, target.faces, target.uvs, target.chart, size,
    )  # fmt: skip
    if device is None:
        texels, flat, face_at = transfer.splat_texels(*splat_args)
        high = texels[:, :3]
    else:
        texels, flat, high, face_at = _splat_on_device(splat_args, device)
    clock.lap("splat")
    channels = []
    if normal_map:
        channels.append(_tangent_space(high, target, size, flat, face_at, device))
    clock.lap("normal")
    offset = 3
    slices = {}
    for name, array in layout:
        slices[name] = texels[:, offset : offset + array.shape[1]]
        offset += array.shape[1]
    views_seen = None
    if source.views is not None:  # drawn on the host: its texel columns come down
        color, views_seen = views.colours(
            source.views, source.vertices, source.faces, _host(slices["position"]),
            _host(texels[:, :3]),
        )  # fmt: skip
    else:
        color = _base_color(source, slices, len(texels), device)
    if source.alpha_field is not None:  # a fourth base-colour channel: glTF's alpha
        alpha = _query(source.alpha_field, slices["position"], 1, device)
        color = _side_by_side(color[:, :3], alpha, device)
    channels.insert(0, color)
    material = None
    if source.material_field is not None:
        material = _query(source.material_field, slices["position"], 2, device)
        channels.append(material)
    clock.lap("color")
    if device is None:
        stacked, filled, sums = _to_image(channels, flat, size)
        # Far from every chart: the texels' mean, so coarse mip levels stay in tone.
        mean = np.rint(sums / len(flat)).astype(np.uint8) if len(flat) else None
        stacked, _grown = dilate.dilate(
            stacked, filled, tolerances.DILATE_PX, background=mean, in_place=True
        )
    else:  # the same steps on the device, from the texels left there: the maps come down
        from backend.geometry import torch_bake, torch_dilate

        maps, _grown = torch_dilate.dilate_texels_tensor(
            torch_bake.quantize(channels, device), flat, size, tolerances.DILATE_PX
        )
        stacked = to_numpy(maps)  # uint8: a quarter of the float texels' bytes
    clock.lap("dilate")
    n_color = color.shape[1]
    base = stacked[..., :n_color]
    normal = (
        stacked[..., n_color : n_color + 3]
        if normal_map
        else np.full((size, size, 3), (128, 128, 255), dtype=np.uint8)
    )
    metallic_roughness = None
    if material is not None:
        metallic_roughness = np.dstack(
            [np.full((size, size), 255, np.uint8), stacked[..., -2], stacked[..., -1]]
        )
    clock.lap("encode")
    return BakedMaps(
        base, normal, metallic_roughness, len(flat) / size**2, clock.laps, views_seen
    )


@dataclass
class DevicePrep:
    """What the device bake needs before the UVs: each source vertex's closest low-res face
    (k,) and distance (k,), and the splat's per-vertex columns (k, 3 + c), tensors there."""

    face: Any
    dist: Any
    attributes: Any


def prepare_on_device(
    source: BakeSource, vertices: np.ndarray, faces: np.ndarray, near_vertex: np.ndarray,
    device: str,
) -> DevicePrep:  # fmt: skip
    """The device bake's first steps on the low-res mesh before it is unwrapped: ``vertices``
    (n, 3), ``faces`` (m, 3) and ``near_vertex`` (N,) a vertex of it near each source vertex,
    all of it used by ``faces``. The unwrap keeps the faces' order and their corners' positions
    and joins seam copies by weld, so the closest faces and distances are those bake() finds on
    the unwrapped mesh, bit for bit; the GPU makes them while the CPU unwraps."""
    from backend.geometry import torch_closest

    # The columns first: an upload from pageable memory waits for the work queued before it,
    # so every upload goes ahead of the long search, and the caller is not held up by it.
    attributes = _device_attributes(source, _attribute_layout(source), device)
    face, dist = torch_closest.closest_faces(
        source.vertices, near_vertex, vertices, faces, None, device
    )
    return DevicePrep(face, dist, attributes)


def _device_attributes(source: BakeSource, layout: list[tuple[str, np.ndarray]],
                       device: str) -> Any:  # fmt: skip
    """The splat's per-vertex columns as a (n, 3 + k) float32 tensor on ``device``: the
    source's vertex normals (torch_normals.py, made there), then the layout's arrays."""
    import torch  # torch only on this path

    from backend.geometry import torch_normals

    columns = [torch_normals.vertex_normals(source.vertices, source.faces, device)]
    for _, array in layout:
        host = np.ascontiguousarray(np.asarray(array).reshape(len(source.vertices), -1))
        columns.append(torch.as_tensor(host, device=device).float())
    return torch.cat(columns, dim=1)


def _splat_on_device(splat_args: tuple, device: str) -> tuple:
    """The splat on a torch device -> the baked texels (k, c), their row-major indices flat
    (k,), their high-res normals (k, 3) and splat faces (k,), all tensors left on the device:
    the normal encoding, the colour, the quantisation and the dilation read them there (a
    host copy of the float texels was ~100 MB at 2048 px, and went back up for the dilation)."""
    import torch  # torch only on this path

    from backend.geometry import transfer_torch

    values, splat_face = transfer_torch.splat_tensors(*splat_args, device=device)
    flat_t = torch.nonzero(splat_face >= 0).squeeze(1)
    texels_t = values[flat_t]
    return texels_t, flat_t, texels_t[:, :3], splat_face[flat_t]


def _host(array: Any) -> np.ndarray:
    """A numpy array of ``array``, a numpy array or a tensor (the device path's texels)."""
    return array if isinstance(array, np.ndarray) else array.cpu().numpy()


def _side_by_side(left: Any, right: Any, device: str | None) -> Any:
    """Columns of two (k, c) blocks: numpy on the host path; on the device path each may be
    numpy (a host answer) or a tensor, and the result is a tensor there."""
    if device is None:
        return np.hstack([left, right])
    import torch

    blocks = [torch.as_tensor(b, device=device).float() for b in (left, right)]
    return torch.cat(blocks, dim=1)


class _Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 4)
        self._last = now


def _attribute_layout(source: BakeSource) -> list[tuple[str, np.ndarray]]:
    """Which per-vertex values ride through the splat, after the normal (3 channels)."""
    layout: list[tuple[str, np.ndarray]] = []
    at_points = source.color_field is not None or source.views is not None
    if source.vertex_colors is not None and not at_points:
        layout.append(("color", source.vertex_colors))
    if source.uvs is not None and source.texture is not None and not at_points:
        layout.append(("uv", source.uvs))
    if at_points or source.material_field is not None or source.alpha_field is not None:
        layout.append(("position", source.vertices))
    return layout


def _base_color(
    source: BakeSource, slices: dict[str, Any], count: int, device: str | None
) -> Any:
    """(count, 3|4) float colour of each baked texel, sRGB: in [0, 1], or for vertex colours
    as interpolated (callers quantize it with _to_image, or torch_bake.quantize on a device,
    which clamp). On the device path ``slices`` are tensors, and so is the answer unless it
    was made on the host (a texture, a numpy-only field)."""
    if source.color_field is not None:
        return _query(source.color_field, slices["position"], 3, device)
    if "uv" in slices:  # sampled on the host
        return _sample_texture(source.texture, _host(slices["uv"]))
    if "color" in slices:
        # Unclipped: the bytes clamp to [0, 255] (NaN to 0) exactly as a clip to [0, 1] would,
        # and clipping 2.7M texels made a 32 MB array of fresh pages (0.1 s at 2048 px).
        return slices["color"]
    # An uncoloured mesh (a shape-only model) bakes neutral grey.
    if device is not None:
        import torch

        return torch.full((count, 3), 0.8, dtype=torch.float32, device=device)
    return np.full((count, 3), 0.8, np.float32)


def _query(
    point_field: PointField, points: np.ndarray, channels: int, device: str | None = None
) -> np.ndarray:
    """Call a model's field in chunks: points (k, 3) -> (k, channels) float32 in [0, 1].

    With a ``device``, a field's ``torch_field`` form runs there in large batches instead;
    ``points`` may then be a tensor there (the device path's texels), and so is the answer."""
    if device is not None:
        from backend.geometry import transfer_torch

        if isinstance(points, np.ndarray):
            batched = transfer_torch.query_field(point_field, points, channels, device)
        else:
            batched = transfer_torch.query_field_tensor(point_field, points, channels)
        if batched is not None:
            return batched
        points = _host(points)  # a numpy-only field: its points come down
    out = np.empty((len(points), channels), dtype=np.float32)
    for start in range(0, len(points), tolerances.FIELD_CHUNK):
        chunk = np.ascontiguousarray(points[start : start + tolerances.FIELD_CHUNK], np.float32)
        out[start : start + len(chunk)] = np.asarray(point_field(chunk))[:, :channels]
    return np.clip(out, 0.0, 1.0)


def _sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear, wrapping lookup of texture (h, w, c) uint8 at uv (k, 2) -> (k, c) in [0, 1]."""
    height, width = texture.shape[:2]
    x = np.mod(uv[:, 0], 1.0) * width - 0.5
    y = np.mod(uv[:, 1], 1.0) * height - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    image = texture.astype(np.float32) / 255.0

    def at(dy: int, dx: int) -> np.ndarray:
        return image[(y0 + dy) % height, (x0 + dx) % width]

    top = at(0, 0) * (1 - fx) + at(0, 1) * fx
    bottom = at(1, 0) * (1 - fx) + at(1, 1) * fx
    return top * (1 - fy) + bottom * fy


def _tangent_space(
    high_normal: Any, target: BakeTarget, size: int, flat: Any,
    splat_face: Any, device: str | None = None,
) -> Any:  # fmt: skip
    """Encode world normals (k, 3) of the baked texels ``flat`` (k,) (row-major indices) in each
    texel's tangent frame -> (k, 3) in [0, 1].

    The frame is that of the low-res face the atlas shows at the texel or, past a chart border,
    of the face the texel was splatted through (``splat_face`` (k,)), its barycentrics
    extrapolated. It is interpolated without normalising and B = w * cross(N, T), as a
    MikkTSpace shader rebuilds it; solving against that exact frame makes the round trip exact.
    With a torch ``device`` the encoding runs there (torch_bake.py; high_normal, flat and
    splat_face may then be tensors on that device) and the answer is a tensor there.
    """
    if device is not None:
        from backend.geometry import torch_bake, torch_raster

        face_id = torch_raster.rasterize_faces(target.uvs, target.faces, size, size, device)
        return torch_bake.encode_normals_tensor(
            high_normal, face_id, flat, splat_face, size, target.uvs, target.faces,
            target.normals, target.tangents, device,
        )  # fmt: skip
    face_id = raster.rasterize_faces(target.uvs, target.faces, size, size)
    out = np.empty((len(flat), 3), dtype=np.float32)
    # The texel normals are a strided view of the splat's block and the faces int32: the
    # kernel reads them in place (copies of 2.7M rows cost more than the encoding).
    _encode_normals(
        np.asarray(high_normal, dtype=np.float32),
        face_id.reshape(-1),
        np.asarray(flat, dtype=np.int64),
        np.asarray(splat_face),
        size,
        np.ascontiguousarray(target.uvs, dtype=np.float64),
        np.ascontiguousarray(target.faces, dtype=np.int64),
        np.ascontiguousarray(target.normals, dtype=np.float64),
        np.ascontiguousarray(target.tangents, dtype=np.float64),
        out,
    )
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _texel_barycentrics(uvs, faces, f, px, py):
    """Barycentrics of the point (px, py) in face f's UV triangle (outside it: extrapolated)."""
    a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
    e1x, e1y = uvs[b, 0] - uvs[a, 0], uvs[b, 1] - uvs[a, 1]
    e2x, e2y = uvs[c, 0] - uvs[a, 0], uvs[c, 1] - uvs[a, 1]
    dx, dy = px - uvs[a, 0], py - uvs[a, 1]
    det = e1x * e2y - e2x * e1y
    if abs(det) < 1e-30:
        det = 1e-30
    w1 = (dx * e2y - e2x * dy) / det
    w2 = (e1x * dy - dx * e1y) / det
    return 1.0 - w1 - w2, w1, w2


@numba.njit(cache=True, nogil=True, parallel=True)
def _encode_normals(high, face_id, flat, splat_face, size, uvs, faces, normals, tangents, out):
    for i in numba.prange(flat.shape[0]):  # texels are independent: all cores
        f = face_id[flat[i]]
        if f < 0:
            f = splat_face[i]
        px = (flat[i] % size + 0.5) / size
        py = (flat[i] // size + 0.5) / size
        b0, b1, b2 = _texel_barycentrics(uvs, faces, f, px, py)
        nx = ny = nz = tx = ty = tz = w = 0.0
        for k in range(3):
            v = faces[f, k]
            weight = b0 if k == 0 else (b1 if k == 1 else b2)
            nx += weight * normals[v, 0]
            ny += weight * normals[v, 1]
            nz += weight * normals[v, 2]
            tx += weight * tangents[v, 0]
            ty += weight * tangents[v, 1]
            tz += weight * tangents[v, 2]
            w += weight * tangents[v, 3]
        sign = -1.0 if w < 0.0 else 1.0
        bx, by, bz = (
            sign * (ny * tz - nz * ty),
            sign * (nz * tx - nx * tz),
            sign * (nx * ty - ny * tx),
        )
        # Solve [t b n] x = high via the dual basis (b x n, n x t, t x b) over the determinant.
        bnx, bny, bnz = by * nz - bz * ny, bz * nx - bx * nz, bx * ny - by * nx
        ntx, nty, ntz = ny * tz - nz * ty, nz * tx - nx * tz, nx * ty - ny * tx
        tbx, tby, tbz = ty * bz - tz * by, tz * bx - tx * bz, tx * by - ty * bx
        det = tx * bnx + ty * bny + tz * bnz
        hx, hy, hz = high[i, 0], high[i, 1], high[i, 2]
        if abs(det) < 1e-20:
            out[i, 0], out[i, 1], out[i, 2] = 0.5, 0.5, 1.0
            continue
        x0 = (bnx * hx + bny * hy + bnz * hz) / det
        x1 = (ntx * hx + nty * hy + ntz * hz) / det
        x2 = max((tbx * hx + tby * hy + tbz * hz) / det, 0.0)  # never into the surface
        length = np.sqrt(x0 * x0 + x1 * x1 + x2 * x2)
        if length < 1e-20:
            out[i, 0], out[i, 1], out[i, 2] = 0.5, 0.5, 1.0
            continue
        out[i, 0] = x0 / length * 0.5 + 0.5
        out[i, 1] = x1 / length * 0.5 + 0.5
        out[i, 2] = x2 / length * 0.5 + 0.5


def _to_uint8(blocks: list[np.ndarray]) -> np.ndarray:
    """Blocks (k, c_i) float in [0, 1] side by side -> (k, sum c_i) uint8, rounded to nearest
    (as float32): the maps' bytes, as :func:`_to_image` writes them into the maps (the
    reference the device quantisation, torch_bake.quantize, is held to)."""
    count = len(blocks[0])
    channels = sum(block.shape[1] for block in blocks)
    out = np.zeros((count, channels), dtype=np.uint8)
    rows = np.arange(count, dtype=np.int64)
    sums, filled = np.zeros(channels, dtype=np.int64), np.zeros(count, dtype=bool)
    column = 0
    for block in blocks:
        _quantize_into(np.asarray(block, dtype=np.float32), rows, column, out, sums, filled)
        column += block.shape[1]
    return out


def _to_image(
    blocks: list[np.ndarray], flat: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_to_uint8`'s bytes written straight into the texels ``flat`` (k,) of a size x size
    map: (image (size, size, sum c_i) uint8, filled (size, size) bool, column sums (sum c_i,)
    int64 of the bytes). One compiled pass a block: no (k, c) byte block, no scatter of it."""
    channels = sum(block.shape[1] for block in blocks)
    image = np.zeros((size, size, channels), dtype=np.uint8)
    filled = np.zeros((size, size), dtype=bool)
    sums = np.zeros(channels, dtype=np.int64)
    flat = np.asarray(flat, dtype=np.int64)
    column = 0
    for block in blocks:
        _quantize_into(np.asarray(block, dtype=np.float32), flat, column,
                       image.reshape(size * size, channels), sums,
                       filled.reshape(-1))  # fmt: skip
        column += block.shape[1]
    return image, filled, sums


QUANTIZE_CHUNKS = 64  # texel chunks of a parallel quantize pass, each with its own sums


@numba.njit(cache=True, nogil=True, parallel=True)
def _quantize_into(values, flat, column, image, sums, filled):
    """Row i of ``values`` (k, w) as bytes into ``image`` (texels, c) row flat[i], columns
    column..column + w, x 255 rounded to nearest (NaN and below 0 to 0, 255 at most; numpy's
    rint + clip + astype made three full temporaries); adds each column's bytes to ``sums``
    and marks filled[flat[i]]. Chunks of rows in parallel (each texel is baked once: no two
    chunks write one texel), each summing apart: integer sums, the same in any order."""
    k, width = values.shape
    step = (k + QUANTIZE_CHUNKS - 1) // QUANTIZE_CHUNKS
    partial = np.zeros((QUANTIZE_CHUNKS, width), np.int64)
    for chunk in numba.prange(QUANTIZE_CHUNKS):
        for i in range(chunk * step, min(k, (chunk + 1) * step)):
            texel = flat[i]
            filled[texel] = True
            for j in range(width):
                v = values[i, j] * 255.0
                byte = np.uint8(0.0 if not v > 0.0 else (255.0 if v >= 255.0 else np.rint(v)))
                image[texel, column + j] = byte
                partial[chunk, j] += byte
    for chunk in range(QUANTIZE_CHUNKS):
        for j in range(width):
            sums[column + j] += partial[chunk, j]
