"""scripts/import_contracts.py: the ``stdlib_only`` contract, run by the real lint-imports.

Each test writes a tiny package and a pyproject.toml that registers the contract the way the
project's own does, and runs lint-imports on it in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONFIG = """
[tool.importlinter]
root_packages = ["wire", "other"]
include_external_packages = true
contract_types = ["stdlib_only: scripts.import_contracts.StdlibOnlyContract"]

[[tool.importlinter.contracts]]
name = "wire: stdlib and zmq only"
type = "stdlib_only"
source_modules = ["wire"]
allowed_external_packages = ["zmq"]
"""


def lint(tmp_path: Path, modules: dict[str, str]) -> subprocess.CompletedProcess[str]:
    for name, source in {"wire/__init__.py": "", "other/__init__.py": "", **modules}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    (tmp_path / "pyproject.toml").write_text(CONFIG)
    env = dict(os.environ, PYTHONPATH=str(REPO))  # where scripts.import_contracts is found
    return subprocess.run([str(LINT_IMPORTS), "--no-logo", "--no-cache"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_stdlib_zmq_and_own_packages_are_kept(tmp_path: Path) -> None:
    result = lint(tmp_path, {
        "wire/codec.py": "import json\nimport zmq.asyncio\nfrom other import thing\n",
        "wire/sub/__init__.py": "from __future__ import annotations\nfrom collections import abc\n",
    })
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_a_third_party_import_anywhere_inside_breaks_it_with_its_line(tmp_path: Path) -> None:
    result = lint(tmp_path, {
        "wire/codec.py": "import json\n\n\ndef f():\n    import numpy\n",  # lazy imports count
        "wire/sub/__init__.py": "from yaml import safe_load\n",
        "other/heavy.py": "import torch\n",  # not the contract's business
    })
    assert result.returncode == 1, result.stdout + result.stderr
    assert "wire.codec -> numpy (l.5)" in result.stdout
    assert "wire.sub -> yaml (l.1)" in result.stdout
    violations = [line for line in result.stdout.splitlines() if line.startswith("-   ")]
    assert len(violations) == 2, result.stdout  # not json, not other -> torch
