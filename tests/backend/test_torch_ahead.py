"""Compiled functions kept on disk (torch_ahead.py): real ``aot_compile`` builds, written by one
process and loaded by the next, on the CPU's inductor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
REPO = Path(__file__).resolve().parents[2]

KERNEL = """
def mix(x, y):
    return (x * {factor} + y).sin().sum(-1)
"""

# One fresh process: the kernel compiled ahead, called on each shape; what it built and whether
# each answer equals the eager function's.
SCRIPT = """
import json, os, sys
import torch
from backend import torch_ahead
import kernels.mix as kernel

built = []
build = torch_ahead._KeptBuilds._build
def counting_build(self, args, kwargs):
    built.append([tuple(a.shape) for a in args])
    return build(self, args, kwargs)
torch_ahead._KeptBuilds._build = counting_build
if os.environ.get("BREAK_SAVE"):  # a build this torch cannot write (not a disk error)
    def cannot_write(*args, **kwargs):
        raise TypeError("cannot pickle this build")
    torch_ahead.os.replace = cannot_write

fast = torch_ahead.compiled_ahead(kernel.mix, "cpu")
same = []
for shape in json.loads(sys.argv[1]):
    x, y = torch.randn(*shape), torch.randn(*shape)
    same.append(bool(torch.allclose(fast(x, y), kernel.mix(x, y))))
print(json.dumps({"built": built, "same": same}))
"""


def _write_kernel(root: Path, factor: int) -> None:
    (root / "kernels").mkdir(exist_ok=True)
    (root / "kernels" / "__init__.py").write_text("")
    (root / "kernels" / "mix.py").write_text(KERNEL.format(factor=factor))


def _run(root: Path, shapes: list[list[int]], **env: str) -> dict:
    environment = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"),
                   "PYTHONPATH": f"{root}{os.pathsep}{REPO}", **env}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(shapes)], cwd=REPO,
                          env=environment, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "log": done.stderr}


def _builds(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "inductor" / "dreamcad-ahead").glob("*.aot"))


@pytest.mark.slow
def test_a_build_is_kept_loaded_by_the_next_process_and_never_run_stale(tmp_path: Path) -> None:
    _write_kernel(tmp_path, factor=2)
    first = _run(tmp_path, [[10, 3], [40, 3]])
    assert first["built"] == [[[10, 3], [10, 3]]] and first["same"] == [True, True]
    kept = _builds(tmp_path)
    assert len(kept) == 1 and kept[0].startswith("kernels.mix.mix-")

    second = _run(tmp_path, [[25, 3], [10, 3]])  # other sizes: the same dynamic build
    assert second["built"] == [] and second["same"] == [True, True]

    # a build cut short (a full disk): said, removed, built again; the answer still right
    (tmp_path / "inductor" / "dreamcad-ahead" / kept[0]).write_bytes(b"cut short")
    third = _run(tmp_path, [[10, 3]])
    assert third["built"] == [[[10, 3], [10, 3]]] and third["same"] == [True]
    assert "cannot load" in third["log"]

    # changed source: the old build is never loaded (it would answer x * 2), and is removed
    _write_kernel(tmp_path, factor=3)
    changed = _run(tmp_path, [[10, 3]])
    assert changed["built"] == [[[10, 3], [10, 3]]] and changed["same"] == [True]
    assert len(_builds(tmp_path)) == 1 and _builds(tmp_path) != kept


@pytest.mark.slow
def test_inputs_no_build_accepts_get_a_build_of_their_own(tmp_path: Path) -> None:
    """A size traced as 1 is a constant of the build (dynamo's 0/1 specialisation): a later
    size-1 call is refused by the first build's guards and gets its own, kept beside it."""
    _write_kernel(tmp_path, factor=2)
    first = _run(tmp_path, [[10, 3], [1, 3], [12, 3]])
    assert first["built"] == [[[10, 3], [10, 3]], [[1, 3], [1, 3]]]
    assert first["same"] == [True, True, True]
    assert len(_builds(tmp_path)) == 2
    again = _run(tmp_path, [[1, 3], [7, 3]])
    assert again["built"] == [] and again["same"] == [True, True]


def test_switched_off_nothing_is_kept(tmp_path: Path) -> None:
    _write_kernel(tmp_path, factor=2)
    result = _run(tmp_path, [[10, 3]], DREAMCAD_COMPILE_AHEAD="0")
    assert result["built"] == [] and result["same"] == [True]
    assert _builds(tmp_path) == []


@pytest.mark.slow
def test_a_build_that_cannot_be_written_still_runs_and_is_not_kept(tmp_path: Path) -> None:
    """Not a disk error but a build this torch cannot write: the call is answered by the build
    all the same (an exception here would send compile_or_eager's caller to eager code)."""
    _write_kernel(tmp_path, factor=2)
    result = _run(tmp_path, [[10, 3], [20, 3]], BREAK_SAVE="1")
    assert result["built"] == [[[10, 3], [10, 3]]] and result["same"] == [True, True]
    assert "compiled code not kept" in result["log"] and "TypeError" in result["log"]
    assert _builds(tmp_path) == []
