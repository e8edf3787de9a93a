"""A 3D Gaussian Splatting ``.ply`` read into arrays (numpy only, no bpy).

Reads the binary little-endian layout splat files use (one ``vertex`` element of scalar
properties; any property order, float or other scalar types, ``f_rest_*`` present or not) and
turns the stored values into what a point cloud shows: colour from the SH DC coefficients
(``0.5 + C0 * f_dc``, clipped to [0, 1]) and opacity through the sigmoid of the stored logit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SH_C0 = 0.28209479177387814  # the degree-0 real spherical harmonic, 1 / (2 sqrt(pi))
_SCALAR_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "<i2", "int16": "<i2",
    "ushort": "<u2", "uint16": "<u2", "int": "<i4", "int32": "<i4", "uint": "<u4",
    "uint32": "<u4", "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
}  # fmt: skip
_END = b"end_header\n"


class SplatFileError(ValueError):
    """The file is not a binary little-endian PLY with the 3DGS vertex properties."""


@dataclass(frozen=True)
class Splats:
    """positions (n, 3) float32; colours (n, 3) float32 sRGB in [0, 1]; opacity (n,) float32
    in [0, 1]; scales (n, 3) float32, the activated (exp) scales."""

    positions: np.ndarray
    colours: np.ndarray
    opacity: np.ndarray
    scales: np.ndarray


def read_vertices(data: bytes) -> np.ndarray:
    """The ``vertex`` element of a binary little-endian PLY as a structured array."""
    end = data.find(_END)
    if not data.startswith(b"ply\n") or end < 0:
        raise SplatFileError("not a PLY file (no 'ply' magic or no end_header)")
    lines = data[:end].decode("ascii", "replace").splitlines()
    if "format binary_little_endian 1.0" not in lines:
        raise SplatFileError("only binary little-endian PLY files are read")
    fields, count, element = [], 0, None
    for line in lines:
        words = line.split()
        if words[:1] == ["element"]:
            element = words[1]
            if element != "vertex" and not fields:
                raise SplatFileError("the vertex element must come first")
            if element == "vertex":
                count = int(words[2])
        elif words[:1] == ["property"] and element == "vertex":
            if words[1] == "list" or words[1] not in _SCALAR_TYPES:
                raise SplatFileError(f"unsupported vertex property {line!r}")
            fields.append((words[2], _SCALAR_TYPES[words[1]]))
    dtype = np.dtype(fields)
    body = data[end + len(_END):]
    if len(body) < count * dtype.itemsize:
        raise SplatFileError(f"{count} vertices announced, {len(body)} bytes of data")
    return np.frombuffer(body, dtype=dtype, count=count)


def read_splats(data: bytes) -> Splats:
    """A 3DGS ply's bytes -> :class:`Splats` (module docstring)."""
    vertices = read_vertices(data)
    needed = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
              "scale_0", "scale_1", "scale_2")  # fmt: skip
    missing = [name for name in needed if name not in (vertices.dtype.names or ())]
    if missing:
        raise SplatFileError(f"not a Gaussian splat file: no {', '.join(missing)}")

    def columns(*names: str) -> np.ndarray:
        return np.stack([vertices[name].astype(np.float32) for name in names], axis=1)

    f_dc = columns("f_dc_0", "f_dc_1", "f_dc_2")
    logits = vertices["opacity"].astype(np.float64)
    return Splats(
        positions=columns("x", "y", "z"),
        colours=np.clip(0.5 + SH_C0 * f_dc, 0.0, 1.0),
        opacity=(0.5 * (1.0 + np.tanh(0.5 * logits))).astype(np.float32),  # overflow-free
        scales=np.exp(columns("scale_0", "scale_1", "scale_2")),
    )
