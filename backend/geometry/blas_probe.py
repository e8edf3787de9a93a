"""Initialise numba's array maths without importing ``scipy.linalg``.

numba imports ``numba.np.arraymath`` when it sets up its CPU target (the first kernel a process
compiles or loads), and that module asks at import time whether a BLAS is there for ``np.dot``:
``ensure_blas()`` imports ``scipy.linalg.cython_blas``, which imports all of ``scipy.linalg``
(0.12-0.18 s of one core on the 2-core box). No kernel of the CPU pipeline calls BLAS (its
linear algebra is closed-form 3x3 arithmetic), so a one-job ``postprocess`` process pays that
import for a yes it never uses, while clean's first kernel waits for the target.

:func:`import_array_math` answers the same question from scipy's files instead: the module is
there (found, not imported) and scipy was built with the integer width numba's wrappers
expect (``scipy.__config__``, as numba checks). numba's own ``ensure_blas`` is put back
afterwards, so a kernel that does use BLAS still imports scipy.linalg when it is compiled,
and numba's answer (``_HAVE_BLAS``) is the one it would have found: no kernel changes.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path


def cython_blas_present() -> bool:
    """Whether scipy's ``linalg/cython_blas`` extension is installed, without importing
    ``scipy.linalg`` (finding the ``scipy`` package imports nothing)."""
    try:
        spec = importlib.util.find_spec("scipy")
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    return any(
        (Path(folder) / "linalg" / f"cython_blas{suffix}").is_file()
        for folder in spec.submodule_search_locations
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
    )


def _ensure_blas_from_files() -> None:
    """numba's ``ensure_blas`` contract (ImportError when there is no BLAS, the integer-width
    guard's RuntimeError on a mismatch), answered without importing ``scipy.linalg``."""
    if not cython_blas_present():
        raise ImportError("scipy 0.16+ is required for linear algebra")
    from numba.np import linalg

    linalg._check_lapack_int_width()  # reads scipy.__config__ only


def import_array_math() -> None:
    """Import ``numba.np.arraymath`` (what numba's CPU target would import on first use) with
    its import-time BLAS probe answered by :func:`_ensure_blas_from_files`. A no-op when the
    module is already imported (then scipy.linalg is too, or another caller did this)."""
    if "numba.np.arraymath" in sys.modules:
        return
    from numba.np import linalg

    real = linalg.ensure_blas
    linalg.ensure_blas = _ensure_blas_from_files
    try:
        from numba.np import arraymath
    finally:
        linalg.ensure_blas = real
    arraymath.ensure_blas = real  # a later BLAS kernel's compile imports scipy.linalg as before
