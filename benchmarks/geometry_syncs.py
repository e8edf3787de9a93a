"""Counting what the torch geometry path would make a GPU wait for: launches and host syncs.

On a GPU the torch path (torch_clean, torch_qem, the bake's torch steps) is bound by how many
kernels the host launches and how often it waits for the device, not by arithmetic. Both can be
counted on CPU torch, so a change's saving is measured without a GPU:

- ops: aten operators that do work (dispatched kernels; views and metadata are not counted),
  about the kernels a CUDA run launches eagerly;
- syncs: calls whose answer the host needs before it can go on. Explicit reads (``.item()``,
  ``.tolist()``, ``bool()``/``int()`` of a tensor, ``.cpu()``) and operators whose
  output size depends on the data (``nonzero``, boolean-mask indexing, ``unique``,
  ``masked_select``, ``repeat_interleave`` without ``output_size``, ``bincount``, ``equal``);
- uploads: host arrays turned into device tensors (pageable host-to-device copies also wait);
- ops outside compiled regions: what a CUDA job still launches eagerly, plus the calls of the
  functions it runs compiled (``COMPILED_REGIONS``, a few fused kernels each).

Each stage's entry function is wrapped to name the stage; decimation rounds are counted too.

    python benchmarks/geometry_syncs.py --resolution 160 --target-faces 8000 --texture-size 1024
    python benchmarks/geometry_syncs.py --device cuda --resolution 464 --target-faces 20000 \
        --texture-size 2048 --out counts.json --profile trace.json   # on a GPU: + a profile
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from backend.geometry import (  # noqa: E402
    bake,
    torch_clean,
    torch_closest,
    torch_dilate,
    torch_qem,
)
from backend.geometry.pipeline import PipelineOptions, run_pipeline  # noqa: E402
from backend.torch_compile import COMPILE_ENV  # noqa: E402

# Operators that only make views or read metadata: no kernel.
_NO_KERNEL = frozenset({
    "view", "_unsafe_view", "reshape", "expand", "permute", "select", "slice", "squeeze",
    "unsqueeze", "t", "transpose", "as_strided", "alias", "detach", "unbind", "split",
    "split_with_sizes", "chunk", "narrow", "empty", "empty_like", "empty_strided",
    "lift_fresh", "_reshape_alias", "resolve_conj", "resolve_neg", "is_nonzero", "sym_size",
    "sym_stride", "sym_numel", "sym_storage_offset", "unfold", "diagonal", "view_as_real",
    "_local_scalar_dense", "set_", "_to_copy_meta",
})  # fmt: skip
# Operators whose output size depends on the data: the host waits for it.
_DATA_SIZED = frozenset({
    "nonzero", "nonzero_static", "masked_select", "_unique2", "_unique", "unique_dim",
    "unique_consecutive", "bincount", "equal",
})  # fmt: skip
_HOST_READS = frozenset({
    "item", "tolist", "__bool__", "__int__", "__float__", "__index__", "cpu",
})  # not ``numpy``: on a GPU it needs a ``cpu()`` first, which is the counted wait
_UPLOADS = frozenset({"as_tensor", "tensor", "from_numpy"})


class Counts:
    """Per-stage counters, filled by the two modes below."""

    def __init__(self) -> None:
        self.stage = "other"
        self.inside = 0  # > 0 inside a function CUDA runs compiled (COMPILED_REGIONS)
        self.ops: Counter[str] = Counter()
        self.outside: Counter[str] = Counter()  # ops outside compiled regions
        self.regions: Counter[str] = Counter()  # calls of compiled regions
        self.syncs: Counter[str] = Counter()
        self.uploads: Counter[str] = Counter()
        self.sync_names: dict[str, Counter[str]] = {}

    def sync(self, name: str) -> None:
        self.syncs[self.stage] += 1
        self.sync_names.setdefault(self.stage, Counter())[name] += 1


class _Reads(TorchFunctionMode):
    """Explicit host reads and uploads, seen at the Python API."""

    def __init__(self, counts: Counts) -> None:
        super().__init__()
        self.counts = counts
        self.depth = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        name = getattr(func, "__name__", "")
        if self.depth == 0:  # a read inside another counted read is the same wait
            if name in _HOST_READS:
                self.counts.sync(name)
            elif name in _UPLOADS and args and isinstance(args[0], np.ndarray):
                self.counts.uploads[self.counts.stage] += 1
        self.depth += 1
        try:
            return func(*args, **(kwargs or {}))
        finally:
            self.depth -= 1


class _Kernels(TorchDispatchMode):
    """Kernels and data-sized operators, seen at the dispatcher."""

    def __init__(self, counts: Counts) -> None:
        super().__init__()
        self.counts = counts

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__.rstrip("_")
        if name not in _NO_KERNEL:
            self.counts.ops[self.counts.stage] += 1
            if not self.counts.inside:
                self.counts.outside[self.counts.stage] += 1
        sized = name == "repeat_interleave" and kwargs.get("output_size") is None
        if name in _DATA_SIZED or sized:
            self.counts.sync(name)
        elif name in ("index", "index_put") and _bool_index(args):
            self.counts.sync(f"{name}[bool]")
        return func(*args, **kwargs)


def _bool_index(args: tuple) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ())


@contextmanager
def counting(stage: str = "all") -> Iterator[Counts]:
    """Count the ops, syncs and uploads of the torch code run inside, under ``stage``."""
    counts = Counts()
    counts.stage = stage
    with _Reads(counts), _Kernels(counts):
        yield counts


def _wrap(module: Any, name: str, stage: str, counts: Counts, calls: Counter[str]) -> Any:
    """Make ``module.name`` count its calls and run under ``stage``; returns the original."""
    inner: Callable[..., Any] = getattr(module, name)

    def staged(*args: Any, **kwargs: Any) -> Any:
        outer, counts.stage = counts.stage, stage
        calls[stage] += 1
        try:
            return inner(*args, **kwargs)
        finally:
            counts.stage = outer

    setattr(module, name, staged)
    return inner


# What a CUDA job runs compiled (backend.torch_compile): each call is a few fused kernels
# there, so the table also gives the eager launches left outside them.
COMPILED_REGIONS = (
    (torch_qem, "_edge_costs"), (torch_qem, "_price"), (torch_qem, "_ring_faces_bad"),
    (torch_qem, "_choose"),
    (torch_dilate, "_round"),
)


def _wrap_region(module: Any, name: str, counts: Counts) -> Any:
    inner: Callable[..., Any] = getattr(module, name)

    def region(*args: Any, **kwargs: Any) -> Any:
        counts.regions[counts.stage] += 1
        counts.inside += 1
        try:
            return inner(*args, **kwargs)
        finally:
            counts.inside -= 1

    setattr(module, name, region)
    return inner


STAGE_FUNCTIONS = (
    (torch_clean, "clean_mesh", "clean"),
    (torch_qem, "collapse", "decimate"),
    (torch_qem, "_round_collapses", "decimate"),
    (torch_closest, "closest_faces", "bake.closest"),
    (bake, "_splat_on_device", "bake.splat"),
    (bake, "_tangent_space", "bake.normal"),
    (torch_dilate, "dilate_texels_tensor", "bake.dilate"),  # what the bake calls
)


def measure(raw: Any, options: PipelineOptions) -> dict[str, Any]:
    """Run the pipeline once under the counters: per stage {ops, syncs, uploads, sync kinds}.
    Eager code is counted (compiling is switched off for the run): the launches as written."""
    calls: Counter[str] = Counter()
    originals = []
    saved = os.environ.get(COMPILE_ENV)
    os.environ[COMPILE_ENV] = "0"
    with counting("other") as counts:
        for module, name, stage in STAGE_FUNCTIONS:
            originals.append((module, name, _wrap(module, name, stage, counts, calls)))
        for module, name in COMPILED_REGIONS:
            originals.append((module, name, _wrap_region(module, name, counts)))
        try:
            result = run_pipeline(raw, options)
        finally:
            for module, name, inner in originals:
                setattr(module, name, inner)
            if saved is None:
                os.environ.pop(COMPILE_ENV)
            else:
                os.environ[COMPILE_ENV] = saved
    stages = sorted(set(counts.ops) | set(counts.syncs))
    return {
        "faces": result.faces,
        "rounds": torch_qem_rounds(calls),
        "stages": {
            s: {
                "ops": counts.ops[s],
                "ops_outside_compiled": counts.outside[s],
                "compiled_calls": counts.regions[s],
                "syncs": counts.syncs[s],
                "uploads": counts.uploads[s],
                "sync_kinds": dict(counts.sync_names.get(s, Counter()).most_common()),
            }
            for s in stages
        },
        "quality": {k: result.quality.get(k) for k in ("mean_distance_pct", "watertight",
                                                        "pieces", "flipped_faces")},
    }


def profile(raw: Any, options: PipelineOptions, trace: Path | None) -> None:
    """A warm run, then one under torch.profiler (CPU and, where present, CUDA) with each
    stage a labelled range: prints each stage's host and device time and the top kernels, so
    a GPU run shows where a stage's wall time goes (host work, waits, or kernels)."""
    from torch.profiler import ProfilerActivity, record_function

    run_pipeline(raw, options)
    originals = []
    for module, name, stage in STAGE_FUNCTIONS[:2] + STAGE_FUNCTIONS[3:]:
        inner = getattr(module, name)

        def ranged(*args: Any, _inner: Any = inner, _stage: str = stage, **kwargs: Any) -> Any:
            with record_function(f"stage:{_stage}"):
                return _inner(*args, **kwargs)

        originals.append((module, name, inner))
        setattr(module, name, ranged)
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    try:
        with torch.profiler.profile(activities=activities) as prof:
            result = run_pipeline(raw, options)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
    finally:
        for module, name, inner in originals:
            setattr(module, name, inner)
    print("pipeline laps (s):", result.timings_s)
    averages = prof.key_averages()
    print(averages.table(sort_by="cpu_time_total", row_limit=12))
    device_sort = "cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    print(averages.table(sort_by=device_sort, row_limit=30))
    if trace:
        prof.export_chrome_trace(str(trace))


def torch_qem_rounds(calls: Counter[str]) -> int:
    """Decimation rounds: calls of the round function (collapse is one more call)."""
    return calls["decimate"] - 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=160)
    parser.add_argument("--target-faces", type=int, default=8000)
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--device", default="cpu", help="also counts on cuda, the same way")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--profile", type=Path, metavar="TRACE.json",
                        help="also profile a warm run per stage; chrome trace written here")
    args = parser.parse_args(argv)
    from benchmarks import blob_mesh

    raw = blob_mesh.make_input(args.resolution)
    options = PipelineOptions(
        target_faces=args.target_faces, texture_size=args.texture_size, device=args.device,
        geometry_path="torch", measure_quality=True,
    )  # fmt: skip
    report = {"input_faces": len(raw.faces), "target_faces": args.target_faces,
              "texture_size": args.texture_size, **measure(raw, options)}  # fmt: skip
    print(f"input {len(raw.faces)} triangles -> {report['faces']} faces, "
          f"{args.texture_size} px; decimation rounds: {report['rounds']}")  # fmt: skip
    print("| stage | ops (eager) | ops outside compiled + compiled calls | syncs | uploads |"
          " sync kinds |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for stage, row in report["stages"].items():
        kinds = ", ".join(f"{k} {v}" for k, v in row["sync_kinds"].items())
        print(f"| {stage} | {row['ops']} | {row['ops_outside_compiled']} + "
              f"{row['compiled_calls']} | {row['syncs']} | {row['uploads']} | {kinds} |")
    print("quality:", report["quality"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    if args.profile:
        args.profile.parent.mkdir(parents=True, exist_ok=True)
        profile(raw, options, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
