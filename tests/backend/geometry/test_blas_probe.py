"""blas_probe: numba's array maths set up without importing scipy.linalg, with numba's own
answer (BLAS there or not) and its own ensure_blas for any kernel that does use BLAS."""

from __future__ import annotations

import importlib.machinery
import json
import subprocess
import sys
from pathlib import Path

from tests.support.backend_process import REPO

CHILD = """
import json, sys
import numba, numpy as np
from numba.np import linalg
real = linalg.ensure_blas
from backend.geometry import blas_probe
blas_probe.import_array_math()
from numba.np import arraymath
after_import = "scipy.linalg" in sys.modules
restored = linalg.ensure_blas is real and arraymath.ensure_blas is real
have_blas = arraymath._HAVE_BLAS

@numba.njit
def dot(a, b):
    return np.dot(a, b)

value = float(dot(np.arange(3.0), np.arange(3.0)))  # np.dot's BLAS path, compiled now
print(json.dumps([after_import, restored, have_blas, value, "scipy.linalg" in sys.modules]))
"""


def test_array_maths_without_scipy_linalg_and_blas_kernels_as_before() -> None:
    result = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    after_import, restored, have_blas, value, after_dot = json.loads(result.stdout)
    assert after_import is False  # numba.np.arraymath imported, scipy.linalg not
    assert restored and have_blas is True  # scipy is installed here: numba's own answer
    assert value == 5.0 and after_dot is True  # a BLAS kernel still imports it when compiled


FAKE_SCIPY = """
import sys
sys.path.insert(0, sys.argv[1])
from backend.geometry import blas_probe
try:
    blas_probe._ensure_blas_from_files()
except ImportError:
    print("no blas")
else:
    print("blas")
"""


def test_a_scipy_without_cython_blas_reads_as_no_blas(tmp_path: Path) -> None:
    (tmp_path / "scipy" / "linalg").mkdir(parents=True)
    # numba's import reads the version
    (tmp_path / "scipy" / "__init__.py").write_text("__version__ = '1.14.1'\n")
    (tmp_path / "scipy" / "linalg" / "__init__.py").write_text("")
    answers = []
    for present in (False, True):
        if present:  # an empty file by the extension's name: found, never imported
            suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
            (tmp_path / "scipy" / "linalg" / f"cython_blas{suffix}").write_bytes(b"")
        result = subprocess.run([sys.executable, "-c", FAKE_SCIPY, str(tmp_path)], cwd=REPO,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 0, result.stderr
        answers.append(result.stdout.strip())
    assert answers == ["no blas", "blas"]
