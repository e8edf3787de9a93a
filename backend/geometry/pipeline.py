"""The geometry pipeline: a model's RawAsset in, a game-ready asset and its manifest out.

Laid out the same way every time: check options, then numbered stages (clean, decimate, UV,
bake, export, preview), each timed, reported through ``progress`` and preceded by a cancel
check, and a :class:`PipelineResult` dataclass at the end. Each stage is its own module and
usable alone; this file only wires them. The game-ready steps ride in those stages: hidden inner
shells go at the end of clean (inner_shells.py, unless ``keep_inner``), ``quads`` swaps the
decimation for a quad remesh (quads.py), and ``lods`` adds coarser levels sharing LOD0's
texture (lod.py) at export.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from backend.cancellation import CancelToken
from backend.geometry import (
    adjacency,
    bake,
    clean,
    decimate,
    export,
    geometry_path,
    inner_shells,
    lod,
    overlap,
    preview,
    quads,
    quality,
    tangents,
    uv,
)
from backend.geometry.bounds import bounds
from backend.geometry.raw_asset import RawAsset
from backend.geometry.tolerances import FLOATER_FRACTION, WELD_DISTANCE
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.limits import (
    DEFAULT_FACES,
    DEFAULT_FORMAT,
    DEFAULT_TEXTURE_SIZE,
    TEXTURE_SIZES,
)

# (stage, step, total, message): the first arguments of backend.models.base.ProgressCallback.
StageProgress = Callable[[str, int, int, str], None]
STAGES = ("clean", "decimate", "uv", "bake", "export", "preview")


@dataclass
class PipelineOptions:
    """What the user asked for. ``pbr`` bakes a normal map (and roughness / metallic maps when
    the model gives a material field); ``height_m`` scales the result to that height.
    ``keep_inner`` keeps surface no outside view can see (removed by default); ``lods`` adds
    that many coarser levels (GLB only, each about half the faces of the one before, sharing
    the texture); ``quads`` remeshes to all quads instead of decimating."""

    target_faces: int = DEFAULT_FACES
    texture_size: int = DEFAULT_TEXTURE_SIZE
    pbr: bool = True
    output_format: str = DEFAULT_FORMAT
    keep_uvs: bool = False
    fill_holes: bool = False
    floater_fraction: float = FLOATER_FRACTION
    height_m: float | None = None
    name: str = "dreamcad"
    preview_size: int = 256
    measure_quality: bool = True
    # "cpu": the compiled CPU bake; a torch device ("cuda", "cuda:1") runs the bake's splat and
    # the model's fields (their ``torch_field`` form, when they have one) with torch there.
    device: str = "cpu"
    # "auto": the torch stages on a CUDA device, the numba ones on the CPU; "torch" / "numba"
    # force one (geometry_path.py; also the DREAMCAD_GEOMETRY_PATH environment variable).
    geometry_path: str = "auto"
    keep_inner: bool = False
    lods: int = 0
    quads: bool = False

    def check(self) -> None:
        """Raise ProtocolError naming the first bad option."""
        decimate.check_target(self.target_faces)
        if self.texture_size not in TEXTURE_SIZES:
            raise ProtocolError(
                ErrorCode.OUT_OF_RANGE,
                f"texture size {self.texture_size} is not one of {TEXTURE_SIZES}",
                field="texture_size",
            )
        if self.output_format not in export.FORMATS:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"output format {self.output_format!r} is not one of {export.FORMATS}",
                field="output_format",
            )
        if not 0.0 <= self.floater_fraction < 1.0:
            raise ProtocolError(
                ErrorCode.OUT_OF_RANGE,
                "floater_fraction must be in [0, 1)",
                field="floater_fraction",
            )
        _check_device(self.device)
        if self.geometry_path not in geometry_path.PATHS:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"geometry_path {self.geometry_path!r} is not one of {geometry_path.PATHS}",
                field="geometry_path",
            )
        if not 0 <= self.lods <= lod.MAX_LODS:
            raise ProtocolError(
                ErrorCode.OUT_OF_RANGE, f"lods must be in [0, {lod.MAX_LODS}]", field="lods"
            )
        if self.lods and self.output_format != "glb":
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, "LODs are written in GLB only", field="lods",
                hint='use output_format "glb", or lods 0',
            )  # fmt: skip
        if self.quads and self.keep_uvs:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, "quads and keep_uvs do not go together: the remesh "
                "makes new vertices, which have no incoming UVs", field="quads",
                hint="drop keep_uvs (the quads are unwrapped anew), or drop quads",
            )  # fmt: skip
        if self.quads:
            quads.check_available()
        if self.height_m is not None and not self.height_m > 0:
            raise ProtocolError(ErrorCode.OUT_OF_RANGE, "height_m must be > 0", field="height_m")


@dataclass
class PipelineResult:
    """The finished asset (for OBJ a zip of obj + mtl + png) and its manifest figures.

    ``quality`` holds numbers only (bools for yes/no figures); ``timings_s`` has one entry per
    stage plus ``bake.<step>`` details and ``quality`` (the figures' own time).
    """

    asset: bytes
    format: str
    media_type: str
    faces: int
    vertices: int
    bbox_min: tuple[float, float, float]
    bbox_max: tuple[float, float, float]
    timings_s: dict[str, float]
    quality: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    preview: bytes = b""  # PNG
    # With LODs: one {"name", "faces", "vertices"} per level, LOD0 first (``faces`` is LOD0's).
    lods: list[dict[str, Any]] = field(default_factory=list)
    # (4, 4): the RawAsset's frame -> the asset's (placed on the ground, scaled to height_m).
    to_asset: np.ndarray = field(default_factory=lambda: np.eye(4))

    def manifest(self) -> dict[str, Any]:
        """Everything but the binary payloads, JSON-ready."""
        data = asdict(self)
        data.pop("asset")
        data.pop("preview")
        data["to_asset"] = np.asarray(self.to_asset).tolist()
        return data


def run_pipeline(
    raw: RawAsset,
    options: PipelineOptions,
    progress: StageProgress | None = None,
    cancel: CancelToken | None = None,
) -> PipelineResult:
    """Turn ``raw`` into the asset ``options`` ask for."""
    path = geometry_path.chosen(options.device, options.geometry_path)
    if geometry_path.torch_device(options.device, path) is None:
        return _run_pipeline(raw, options, progress, cancel)
    # The device path's CPU stages run beside threads that launch GPU work and measure: the
    # GIL goes to the critical path without the 5 ms wait (overlap.quick_handoff).
    with overlap.quick_handoff():
        return _run_pipeline(raw, options, progress, cancel)


def _run_pipeline(
    raw: RawAsset,
    options: PipelineOptions,
    progress: StageProgress | None,
    cancel: CancelToken | None,
) -> PipelineResult:
    options.check()
    if len(raw.faces) == 0:
        raise ProtocolError(ErrorCode.GEOMETRY_FAILED, "the model returned an empty mesh")
    timings: dict[str, float] = {}
    warnings = list(raw.warnings)
    path = geometry_path.chosen(options.device, options.geometry_path)
    on = geometry_path.torch_device(options.device, path)  # None: the numba stages
    keep_uvs = options.keep_uvs and raw.uvs is not None
    if options.keep_uvs and raw.uvs is None:
        warnings.append("keep_uvs asked but the input has no UVs: unwrapped instead")

    def stage(index: int, message: str) -> float:
        if cancel is not None:
            cancel.raise_if_cancelled()
        if progress is not None:
            progress(STAGES[index], index, len(STAGES), message)
        return time.perf_counter()

    def done(index: int, started: float) -> None:
        timings[STAGES[index]] = round(time.perf_counter() - started, 4)

    # 1. clean
    removal = "" if options.keep_inner else ", hidden inner shells"
    started = stage(0, f"welding, removing degenerate faces, floaters{removal}")
    cleaned = _clean(raw, options, on)
    inner: dict[str, int] = {}
    inner_s = 0.0
    if not options.keep_inner and len(cleaned.faces):
        inner_started = time.perf_counter()
        if on is None:
            cleaned, _found = inner_shells.remove_inner_shells(cleaned)
        else:  # the views drawn on the device: the same answer
            from backend.geometry import torch_inner_shells  # torch only on this path

            cleaned, _found = torch_inner_shells.remove_inner_shells(cleaned, device=on)
        inner_s = round(time.perf_counter() - inner_started, 4)
        inner = {key: cleaned.report[key] for key in ("inner_faces", "inner_shells")}
    if len(cleaned.faces) == 0:
        raise ProtocolError(ErrorCode.GEOMETRY_FAILED, "nothing is left of the mesh after cleaning")
    source, source_origin = _bake_source(raw, cleaned, options.pbr)
    # The bake's source normals (~0.08 s for 800k faces) on the other core, beside the
    # decimator's serial quadric set-up: the same array the bake would make, made earlier.
    source_normals = (
        overlap.Beside(tangents.vertex_normals, source.vertices, source.faces, name="normals")
        if on is None
        else None
    )
    done(0, started)
    if inner:
        timings["clean.inner_shells"] = inner_s  # part of "clean"
    # 2. decimate
    started = stage(1, f"reducing {len(cleaned.faces)} faces to {options.target_faces}")
    # The decimator's kernels cut their loops into one static chunk per thread: with the normals
    # thread beside on one of the cores, every kernel waits for the chunk sharing it. Leaving it
    # that core (from 3 threads up) took the stage from 0.43 to 0.36 s on a 16-core box.
    with overlap.fewer_cores(1 if source_normals is not None else 0):
        reduced, quad_count = _reduce(cleaned, source, options, keep_uvs, on)
    decimated = not options.quads and len(cleaned.faces) > options.target_faces
    if decimated and not decimate.within_tolerance(len(reduced.faces), options.target_faces):
        euler = quality.topology(reduced.vertices, reduced.faces)["euler"]
        warnings.append(
            f"reached {len(reduced.faces)} faces for a target of {options.target_faces}: the "
            f"surface's topology (about {max(0, (2 - euler) // 2)} handles) is kept rather "
            "than torn to get lower"
        )
    if options.quads and abs(len(reduced.faces) - options.target_faces) > (
        quads.FACE_TOLERANCE * options.target_faces
    ):
        warnings.append(
            f"the quad remesh has {quad_count} quads ({len(reduced.faces)} triangles) for a "
            f"target of {options.target_faces} faces: Instant Meshes sets its own density"
        )
    done(1, started)
    # 3. UV
    started = stage(2, "unwrapping")
    # The device bake's first steps need the reduced mesh, not its UVs: they are queued on the
    # GPU first, which works through them while the CPU unwraps (bake.prepare_on_device).
    hint = _owner_hint(source, source_origin, reduced, keep_uvs)
    prepared = _prepare_bake(source, reduced, hint, on) if not keep_uvs else None
    if keep_uvs:
        mapped = _incoming_charts(reduced.vertices, reduced.faces, reduced.attributes["uvs"])
    else:
        groups = quads.pair_groups(quad_count) if quad_count else None
        mapped = uv.unwrap(reduced.vertices, reduced.faces, options.texture_size, groups=groups)
    # The distance figures need only the source and the reduced mesh: on the device path the
    # CPU mostly waits on the GPU from here on, so they are measured meanwhile (same call), on
    # all cores but two (the bake's host thread and the export). Not beside the unwrap, the
    # critical path's CPU step: beside it that took 0.053 s, not 0.045 s, on a 16-core box.
    measured = (
        overlap.Beside(_surface_distance, source, reduced, name="quality", spare=2)
        if on is not None and options.measure_quality and overlap.kernels_threadsafe()
        else None
    )
    normals = tangents.vertex_normals(mapped.vertices, mapped.faces, mapped.source_vertex)
    frame = tangents.vertex_tangents(mapped.vertices, mapped.faces, mapped.uvs, normals)
    done(2, started)
    # 4. bake
    started = stage(3, f"baking {options.texture_size} px maps")
    placed = export.place_on_ground(mapped.vertices, options.height_m)
    # On a device the bake's host thread mostly waits for the GPU: the preview's raster and
    # light (all it needs but the maps) are drawn meanwhile on a second thread (numba raster
    # nogil, numpy). Not beside the numba bake, whose kernels use every core.
    drawing = (
        overlap.Beside(preview.draw, placed, mapped.faces, normals, mapped.uvs,
                       options.preview_size, name="preview")
        if on is not None
        else None
    )  # fmt: skip
    target = bake.BakeTarget(
        mapped.vertices, mapped.faces, mapped.uvs, normals, frame, mapped.chart,
        mapped.source_vertex,
    )  # fmt: skip
    near = _near_vertex_hint(hint, reduced, mapped)
    maps = bake.bake(
        source, target, options.texture_size, normal_map=options.pbr, near_vertex=near,
        device=on, source_normals=source_normals.result() if source_normals else None,
        prepared=prepared,
    )  # fmt: skip
    done(3, started)
    # 5. export
    started = stage(4, f"writing {options.output_format.upper()}")
    # The preview beside the export and the quality figures: on a device its drawing was made
    # beside the bake and only its colouring and PNG are left; on the CPU all of it (a serial
    # raster and PNG, ~0.05-0.1 s), whose parallel and zlib parts leave cores idle. The same
    # image, drawn earlier.
    preview_beside = (
        overlap.Beside(_finish_preview, drawing, maps.base_color, name="preview")
        if drawing is not None
        else overlap.Beside(
            preview.render_png, placed, mapped.faces, normals, mapped.uvs, maps.base_color,
            options.preview_size, name="preview",
        )
    )  # fmt: skip
    levels: list[export.LODGeometry] = []
    if options.lods:
        lods_started = time.perf_counter()
        levels = lod.export_levels(mapped, placed, normals, frame, options.lods, warnings)
        timings["lods"] = round(time.perf_counter() - lods_started, 4)
    mesh = export.ExportMesh(
        placed, mapped.faces, normals, mapped.uvs, frame, mapped.source_vertex,
        maps.base_color, maps.normal if options.pbr else None, maps.metallic_roughness,
        raw.roughness, raw.metallic, options.name, levels, quad_count,
        alpha_blend=raw.alpha_field is not None,
    )  # fmt: skip
    # The export's and quality figures' kernels leave the preview its core (on the CPU path
    # it is all of its drawing; on a device only its colouring and PNG are left).
    with overlap.fewer_cores(1 if drawing is None else 0):
        asset = export.export(mesh, options.output_format)
        done(4, started)
        # Not a stage (no progress step), but timed: on a 5M-face source it was 1.3 s no stage
        # showed.
        started = time.perf_counter()
        figures = _quality(source, reduced, mapped, maps, options, measured)
        timings["quality"] = round(time.perf_counter() - started, 4)
    # 6. preview: drawn beside export and quality; its time is what is left to wait for
    started = stage(5, "rendering the preview")
    preview_png = preview_beside.result()
    done(5, started)
    figures.update({f"{key}_removed": count for key, count in inner.items()})
    figures["torch_stages"] = on is not None  # clean, decimate and bake ran in torch
    if options.quads:
        figures["quads"] = quad_count
    timings.update({f"bake.{name}": seconds for name, seconds in maps.timings_s.items()})
    low, high = bounds(placed)
    return PipelineResult(
        asset=asset,
        format=options.output_format,
        media_type=export.MEDIA_TYPES[options.output_format],
        faces=len(mapped.faces),
        vertices=len(mapped.vertices),
        bbox_min=tuple(float(x) for x in low),
        bbox_max=tuple(float(x) for x in high),
        timings_s=timings,
        quality=figures,
        warnings=warnings,
        preview=preview_png,
        lods=lod.report(options.name, mapped, levels),
        to_asset=export.ground_placement(mapped.vertices, options.height_m),
    )


def _reduce(
    cleaned: clean.CleanResult,
    source: bake.BakeSource,
    options: PipelineOptions,
    keep_uvs: bool,
    on: str | None,
) -> tuple[decimate.DecimateResult, int]:
    """The decimated mesh (quads as face pairs when asked) and its quad count (0: triangles)."""
    if options.quads:
        return quads.remesh_to_pairs(cleaned.vertices, cleaned.faces, options.target_faces)
    if keep_uvs:  # seams stay split, so the decimator keeps them as borders
        reduced = decimate.decimate(
            source.vertices, source.faces, options.target_faces, {"uvs": source.uvs}, on
        )
    else:
        reduced = decimate.decimate(
            cleaned.vertices, cleaned.faces, options.target_faces, device=on
        )
    return reduced, 0


def _finish_preview(drawing: overlap.Beside[preview.Drawing], base_color: np.ndarray) -> bytes:
    """The preview PNG from its drawing (made beside the bake) and the baked base colour:
    preview.render_png's bytes."""
    return export.encode_png(preview.finish(drawing.result(), base_color))


def _clean(raw: RawAsset, options: PipelineOptions, on: str | None) -> clean.CleanResult:
    """Stage 1's clean step: in torch on ``on`` when it handles the input, else clean.py."""
    colors = {} if raw.vertex_colors is None else {"colors": raw.vertex_colors}
    corners = {} if raw.uvs is None else {"uvs": raw.uvs[raw.faces]}
    if on is not None:
        from backend.geometry import torch_clean  # torch only on this path

        if torch_clean.supports(corners, options.fill_holes):
            return torch_clean.clean_mesh(
                raw.vertices, raw.faces, colors, floater_fraction=options.floater_fraction,
                device=on,
            )  # fmt: skip
    return clean.clean_mesh(
        raw.vertices, raw.faces, colors, corners, floater_fraction=options.floater_fraction,
        fill_holes_enabled=options.fill_holes,
    )  # fmt: skip


def _check_device(device: str) -> None:
    """A device other than "cpu" needs torch and, for CUDA, a visible GPU."""
    if device == "cpu":
        return
    try:
        import torch  # optional: only the GPU bake needs it
    except ImportError as error:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f"device {device!r} needs torch, which is not installed",
            field="device", hint='install torch or use device="cpu"',
        ) from error  # fmt: skip
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f"device {device!r} is not a torch device name",
            field="device", hint='e.g. "cpu" or "cuda"',
        ) from error  # fmt: skip
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f"device {device!r} asked but CUDA is not available",
            field="device", hint='use device="cpu"',
        )  # fmt: skip


def _bake_source(
    raw: RawAsset, cleaned: clean.CleanResult, pbr: bool
) -> tuple[bake.BakeSource, np.ndarray]:
    """The cleaned high-res mesh as bake source (split along incoming UV seams if textured),
    and the cleaned vertex (N,) each source vertex came from."""
    vertices, faces, uvs = cleaned.vertices, cleaned.faces, None
    origin = np.arange(len(vertices))
    colors = cleaned.attributes.get("colors")
    if "uvs" in cleaned.corner_attributes:
        faces, uvs, origin = clean.split_corners(
            cleaned.vertices, cleaned.faces, cleaned.corner_attributes["uvs"]
        )
        vertices = cleaned.vertices[origin]
        colors = None if colors is None else colors[origin]
    source = bake.BakeSource(
        vertices, faces, colors, uvs, raw.texture, raw.color_field,
        raw.material_field if pbr else None, raw.views, raw.alpha_field,
    )  # fmt: skip
    return source, origin


def _owner_hint(
    source: bake.BakeSource,
    source_origin: np.ndarray,
    reduced: decimate.DecimateResult,
    keep_uvs: bool,
) -> np.ndarray | None:
    """For each source vertex, a reduced vertex some face uses (N,): the one it merged into, or,
    where that one lost all its faces in a collapse, the nearest used one (a KD-tree over those
    few alone; before, one such vertex sent the bake's search over every source vertex: 0.4 s
    of a 5M-face TRELLIS job). None when the decimator kept no merge map."""
    if reduced.owner is None:
        return None
    owner = reduced.owner if keep_uvs else reduced.owner[source_origin]
    used = np.zeros(len(reduced.vertices), dtype=bool)
    used[reduced.faces.reshape(-1)] = True
    orphan = ~used[owner]
    if orphan.any():
        kept = np.flatnonzero(used)
        if len(kept) == 0:
            return None
        from scipy.spatial import cKDTree  # only for meshes whose collapses left such vertices

        nearest = cKDTree(reduced.vertices[kept]).query(source.vertices[orphan], workers=-1)[1]
        owner = owner.copy()
        owner[orphan] = kept[nearest]
    return owner


def _prepare_bake(
    source: bake.BakeSource,
    reduced: decimate.DecimateResult,
    hint: np.ndarray | None,
    on: str | None,
) -> bake.DevicePrep | None:
    """bake.prepare_on_device on the device path given an owner hint, called on this thread:
    it only queues GPU work (no host wait), so the unwrap runs while the GPU does it. On a
    thread of its own beside the unwrap (session 10) its ~200 eager launches kept taking the
    GIL from the unwrap's Python glue: uv went from 0.024 to 0.077 s on an H200 box."""
    if on is None or hint is None:
        return None
    return bake.prepare_on_device(source, reduced.vertices, reduced.faces, hint, on)


def _near_vertex_hint(hint: np.ndarray | None, reduced: decimate.DecimateResult,
                      mapped: uv.UVResult) -> np.ndarray | None:  # fmt: skip
    """For each source vertex, a UV-mapped copy of its ``hint`` vertex (None: let bake search).
    A reduced vertex without a UV-mapped copy (no face uses it) makes the answer None."""
    if hint is None:
        return None
    split_copy = np.full(len(reduced.vertices), -1, dtype=np.int64)
    split_copy[mapped.source_vertex] = np.arange(len(mapped.source_vertex))
    near = split_copy[hint]
    return None if (near < 0).any() else near


def _incoming_charts(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray) -> uv.UVResult:
    """Wrap kept UVs as a UVResult: charts are the pieces connected through shared UV vertices."""
    count, chart = adjacency.face_components(faces, len(vertices))
    identity = np.arange(len(vertices))[:, None]
    _, weld = clean.weld_vertices(vertices, identity, WELD_DISTANCE * clean.bbox_diagonal(vertices))
    weld = weld[:, 0]
    signed = uv.uv_signed_areas(uvs, faces)
    return uv.UVResult(
        vertices=vertices, faces=faces, uvs=uvs.astype(np.float32), source_vertex=weld,
        chart=chart, charts=count, utilization=float(np.clip(np.abs(signed).sum(), 0, 1)),
        flipped_faces=int(np.count_nonzero(signed <= 0)),
    )  # fmt: skip


def _quality(
    source: bake.BakeSource,
    reduced: decimate.DecimateResult,
    mapped: uv.UVResult,
    maps: bake.BakedMaps,
    options: PipelineOptions,
    measured: overlap.Beside[dict[str, float]] | None = None,
) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "uv_utilization": round(mapped.utilization, 4),
        "uv_charts": mapped.charts,
        "flipped_faces": mapped.flipped_faces,
        "texture_coverage": round(maps.coverage, 4),
    }
    if maps.views_seen is not None:
        figures["views_seen"] = round(maps.views_seen, 4)
    # Topology of the positions alone: UV seams are not holes.
    distance = WELD_DISTANCE * clean.bbox_diagonal(reduced.vertices)
    kept, welded = clean.weld_vertices(reduced.vertices, reduced.faces, distance)
    figures.update(quality.topology(reduced.vertices[kept], welded))
    if measured is not None:
        figures.update(measured.result())
    elif options.measure_quality:
        figures.update(_surface_distance(source, reduced))
    return figures


def _surface_distance(
    source: bake.BakeSource, reduced: decimate.DecimateResult
) -> dict[str, float]:
    """quality.surface_distance of the result against its source, and how long it took."""
    started = time.perf_counter()
    figures = quality.surface_distance(
        (source.vertices, source.faces), (reduced.vertices, reduced.faces)
    )
    return {**figures, "measure_s": round(time.perf_counter() - started, 4)}
