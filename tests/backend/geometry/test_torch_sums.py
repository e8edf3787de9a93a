"""torch_sums.index_sum: per-row sums in the given order, and a torch path that adds no float
in arrival order (what made every CUDA job's asset different).

CUDA's float ``index_add_`` cannot be caught differing on a CPU, so the path is audited by
the operators it calls: it runs here on the CPU device (the code a CUDA job runs) under a
dispatch mode that notes every float accumulation whose CUDA kernel adds in arrival order.
The CUDA tests at the end run where a GPU is present.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from backend.geometry import overlap, pipeline
from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.geometry.raw_asset import RawAsset
from tests.support.analytic_meshes import analytic_color

torch = pytest.importorskip("torch")
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from backend.geometry import torch_qem, torch_sums  # noqa: E402

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _contributions(seed: int, rows: int, k: int, columns: int) -> tuple[Any, Any]:
    """Indices with one long run (a fan vertex) and values over 16 decades, so that any
    other order of addition changes the last bits."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, rows, k)
    index[: k // 3] = rows // 2
    values = rng.normal(size=(k, columns)) * 10.0 ** rng.integers(-8, 8, (k, 1))
    return torch.as_tensor(index), torch.as_tensor(values)


def _sequential(index: Any, values: Any, rows: int) -> np.ndarray:
    expected = np.zeros((rows, values.shape[1]))
    np.add.at(expected, index.numpy(), values.numpy())  # one at a time, in index order
    return expected


@pytest.mark.parametrize("slice_size", [None, 1, 7, 100, 1 << 30])
@pytest.mark.parametrize(("rows", "k", "columns"), [(50, 3000, 10), (1000, 300, 3), (7, 0, 2)])
def test_each_row_adds_its_values_in_their_order(rows, k, columns, slice_size) -> None:
    index, values = _contributions(rows + k, rows, k, columns)
    expected = _sequential(index, values, rows)
    got = torch_sums.index_sum(index, values, rows, slice_size=slice_size)
    assert got.shape == (rows, columns) and got.dtype == torch.float64
    np.testing.assert_array_equal(got.numpy(), expected)  # to the bit
    lazily = torch_sums.index_sum(index, lambda at: values[at], rows, slice_size=slice_size)
    np.testing.assert_array_equal(lazily.numpy(), expected)
    one_column = torch_sums.index_sum(index, values[:, 0], rows, slice_size=slice_size)
    assert one_column.shape == (rows,)
    np.testing.assert_array_equal(one_column.numpy(), expected[:, 0])


def test_slices_never_split_a_row_and_gather_about_their_size() -> None:
    index, values = _contributions(3, 200, 5000, 4)
    gathered: list[int] = []

    def noted(at: Any) -> Any:
        gathered.append(len(at))
        assert bool((index[at][1:] >= index[at][:-1]).all())  # row by row
        return values[at]

    got = torch_sums.index_sum(index, noted, 200, slice_size=400)
    np.testing.assert_array_equal(got.numpy(), _sequential(index, values, 200))
    assert sum(gathered) == 5000 and len(gathered) > 5
    # Every slice but the long run's stays near the size; the run is one slice, never split.
    assert max(gathered) >= 5000 // 3 and sorted(gathered)[-2] <= 400 + 5000 // 200 * 4


# Operators whose CUDA kernels add floats in the order the threads arrive, and the arguments
# that make them do so (None: always).
_ARRIVAL_ORDER = {
    "index_add": None, "scatter_add": None, "index_put": "accumulate",
    "_index_put_impl": "accumulate", "_unsafe_index_put": "accumulate", "put": "accumulate",
    "scatter_reduce": "reduce", "index_reduce": "reduce", "bincount": "weights",
}


class ArrivalOrderSums(TorchDispatchMode):
    """Notes each call of an ``_ARRIVAL_ORDER`` operator on float data, and counts them all."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.calls = 0
        self.names: set[str] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__.rstrip("_")
        self.calls += 1
        self.names.add(name)
        if name in _ARRIVAL_ORDER and self._adds_floats(func, name, args, kwargs):
            self.found.append(f"{func} on {args[0].dtype}")
        return func(*args, **kwargs)

    @staticmethod
    def _adds_floats(func: Any, name: str, args: Any, kwargs: Any) -> bool:
        target = args[0]
        schema = [a.name for a in func._schema.arguments]
        given = dict(zip(schema, args, strict=False)) | kwargs
        argument = _ARRIVAL_ORDER[name]
        if name == "bincount":
            return given.get("weights") is not None and given["weights"].is_floating_point()
        if not target.is_floating_point():
            return False  # integer sums are the same in any order
        if argument == "reduce":
            return given.get("reduce") in ("sum", "mean", "prod")
        return argument is None or bool(given.get(argument, False))


def test_the_audit_sees_an_arrival_order_sum() -> None:
    with ArrivalOrderSums() as audit:
        twice = torch.tensor([0, 0])
        torch.zeros(3, dtype=torch.float64).index_add_(0, twice, torch.ones(2).double())
        torch.zeros(3, dtype=torch.int64).index_add_(0, twice, torch.ones(2).long())
        torch.zeros(3).index_put_((torch.tensor([1, 1]),), torch.ones(2), accumulate=True)
        torch.zeros(3).scatter_reduce_(0, torch.tensor([1, 1]), torch.ones(2), reduce="amin")
    assert len(audit.found) == 2 and "index_add" in audit.found[0] and "index_put" in audit.found[1]


def test_the_torch_path_adds_no_float_in_arrival_order(sphere_mesh, monkeypatch) -> None:
    # Everything on this thread, so the (thread-local) dispatch mode sees every stage.
    monkeypatch.setattr(pipeline.overlap, "kernels_threadsafe", lambda: False)
    monkeypatch.setattr(overlap, "kernels_threadsafe", lambda: False)
    monkeypatch.setenv("DREAMCAD_COMPILE", "0")  # eager: every operator is dispatched
    vertices, faces = sphere_mesh
    raw = RawAsset(vertices, faces, vertex_colors=analytic_color(vertices))
    options = PipelineOptions(target_faces=1000, texture_size=256, geometry_path="torch")
    with ArrivalOrderSums() as audit:
        result = run_pipeline(raw, options)
    assert result.quality["torch_stages"] and len(result.asset) > 0
    assert audit.calls > 1000 and "segment_reduce" in audit.names  # the stages ran in torch
    assert audit.found == []


@CUDA
def test_cuda_sums_are_the_sequential_sums() -> None:
    index, values = _contributions(5, 300, 200_000, 10)
    expected = _sequential(index, values, 300)
    for slice_size in (None, 30_000):
        for _ in range(3):
            got = torch_sums.index_sum(index.cuda(), values.cuda(), 300, slice_size=slice_size)
            np.testing.assert_array_equal(got.cpu().numpy(), expected)
    flat = [torch_sums.index_sum(index.cuda(), values[:, 0].cuda(), 300, long_rows=True).cpu()
            for _ in range(3)]  # fmt: skip
    assert all(torch.equal(flat[0], again) for again in flat[1:])  # a tree: the same each run


@CUDA
def test_cuda_decimation_gives_the_same_mesh_every_run() -> None:
    from backend.geometry import clean
    from tests.support.analytic_meshes import marching_cubes_mesh, sphere_field

    mesh = clean.clean_mesh(*marching_cubes_mesh(sphere_field, 60))
    first = torch_qem.collapse(mesh.vertices, mesh.faces, 2000, device="cuda")
    for _ in range(3):
        again = torch_qem.collapse(mesh.vertices, mesh.faces, 2000, device="cuda")
        for a, b in zip(first, again, strict=True):
            np.testing.assert_array_equal(a, b)


def test_long_rows_add_each_row_as_a_tree() -> None:
    # A piece's faces: few rows, very many values. Not the loop's bits, but its sums.
    index, values = _contributions(9, 3, 100_000, 1)
    expected = _sequential(index, values, 3)[:, 0]
    got = torch_sums.index_sum(index, values[:, 0], 3, long_rows=True)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12 * np.abs(values).max())
    with pytest.raises(ValueError, match="1-D"):
        torch_sums.index_sum(index, values, 3, long_rows=True)
