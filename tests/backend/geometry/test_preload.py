"""preload: the cached kernels load on a second thread, only from the disk cache, and cover
every kernel the CPU pipeline calls from Python."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numba
import pytest
from numba.core import caching

from backend.geometry import preload
from tests.support.backend_process import REPO

KERNEL_SOURCE = """
import numba


@numba.njit(cache=True)
def twice(x):
    return 2 * x
"""


def _kernel_module(folder: Path, name: str):
    if not (folder / f"{name}.py").exists():
        (folder / f"{name}.py").write_text(KERNEL_SOURCE)
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def _fill_cache(folder: Path, name: str, call: str) -> None:
    """Call the kernel in another process, so its machine code lands in the disk cache."""
    (folder / f"{name}.py").write_text(KERNEL_SOURCE)
    code = f"import sys; sys.path.insert(0, {str(folder)!r}); import {name}; {name}.{call}"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_kernels_are_cached_dispatchers() -> None:
    for dispatcher in preload.kernels():
        assert isinstance(dispatcher, numba.core.registry.CPUDispatcher)
        assert isinstance(dispatcher._cache, caching.FunctionCache), dispatcher  # cache=True


def test_load_cached_loads_what_is_cached_and_compiles_nothing(tmp_path: Path) -> None:
    _fill_cache(tmp_path, "preload_probe", "twice(3)")
    module = _kernel_module(tmp_path, "preload_probe")
    assert [str(sig) for sig in preload.cached_signatures(module.twice)] == ["(int64,)"]
    preload.load_cached([module.twice])
    assert [str(sig) for sig in module.twice.signatures] == ["(int64,)"]
    assert sum(module.twice.stats.cache_hits.values()) == 1
    assert sum(module.twice.stats.cache_misses.values()) == 0  # nothing compiled
    assert module.twice(4) == 8


def test_a_stale_or_empty_cache_loads_nothing(tmp_path: Path) -> None:
    empty = _kernel_module(tmp_path, "preload_empty")  # never called: no cache
    assert preload.cached_signatures(empty.twice) == []
    _fill_cache(tmp_path, "preload_stale", "twice(3)")
    source = tmp_path / "preload_stale.py"
    source.write_text(KERNEL_SOURCE + "\n\nEDITED = True  # a new stamp: the cache is stale\n")
    stale = _kernel_module(tmp_path, "preload_stale")
    assert preload.cached_signatures(stale.twice) == []
    preload.load_cached([empty.twice, stale.twice])
    assert empty.twice.signatures == [] and stale.twice.signatures == []


PIPELINE_CHILD = """
import json, sys
import numpy as np
from numba.core import caching
from backend.geometry import tolerances
tolerances.PARALLEL_SWEEP_FACES = 10_000  # a small mesh on the large meshes' slab path
from backend.geometry import preload
from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.geometry.raw_asset import RawAsset
from tests.support.analytic_meshes import analytic_color, blob_field, marching_cubes_mesh

vertices, faces = marching_cubes_mesh(blob_field, 56)
raw = RawAsset(vertices, faces, vertex_colors=analytic_color(vertices))
if sys.argv[1] == "preload":
    preload.load_cached(preload.kernels())
loaded = []
original = caching.Cache.load_overload
def load_overload(self, sig, target_context):
    loaded.append(self._name.split(" at ")[0].split("function ")[-1])
    return original(self, sig, target_context)
caching.Cache.load_overload = load_overload
run_pipeline(raw, PipelineOptions(target_faces=2000, texture_size=512))
print(json.dumps(loaded))
"""


@pytest.mark.slow
def test_after_the_preload_the_cpu_pipeline_loads_no_kernel() -> None:
    """A fresh process that preloaded runs the whole CPU pipeline without one more cache load
    (a kernel missing from KERNELS would load on its first call)."""

    def run(mode: str) -> list[str]:
        result = subprocess.run([sys.executable, "-c", PIPELINE_CHILD, mode], cwd=REPO,
                                capture_output=True, text=True, timeout=900)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.splitlines()[-1])

    without = run("cold")  # also fills the disk cache where it was cold
    assert len(set(without)) >= 15  # the check below has something to find
    assert run("preload") == []


SET_UP_CHILD = """
import json, sys
from backend.geometry import preload
before = "numpy.ma" in sys.modules
preload.start(()).join()  # no kernels: only the set-up the thread does first
from numba.np import arraymath
print(json.dumps([before, "numpy.ma" in sys.modules, "scipy.linalg" in sys.modules,
                  arraymath._HAVE_BLAS]))
"""


def test_the_thread_sets_up_array_maths_and_numpy_ma_off_the_main_thread() -> None:
    result = subprocess.run([sys.executable, "-c", SET_UP_CHILD], cwd=REPO,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [False, True, False, True]
