"""Run the Khronos glTF validator (npm ``gltf-validator`` in .venv/node) on a file.

``validate(path)`` returns the validator's JSON report; tests assert
``report["issues"]["numErrors"] == 0``. When node or the package is missing the calling test is
skipped with the reason, never passed silently.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / ".venv" / "node" / "node_modules" / "gltf-validator"

_SCRIPT = """
const fs = require("fs");
const validator = require(process.argv[1]);
const data = new Uint8Array(fs.readFileSync(process.argv[2]));
validator.validateBytes(data, {maxIssues: 200}).then(
  (report) => { process.stdout.write(JSON.stringify(report)); },
  (error) => { process.stderr.write(String(error)); process.exit(2); }
);
"""


def validate(path: Path) -> dict:
    """The validator's report (dict) for the glTF/GLB file at ``path``."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the glTF validator cannot run (scripts/setup_env.sh)")
    if not (PACKAGE / "package.json").is_file():
        pytest.skip(f"gltf-validator missing at {PACKAGE}: run scripts/setup_env.sh")
    done = subprocess.run(
        [node, "-e", _SCRIPT, str(PACKAGE), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"gltf-validator failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def error_messages(report: dict) -> list[str]:
    """The error-severity messages of a report (severity 0), for assertion output."""
    return [
        f"{m['code']}: {m['message']} at {m.get('pointer', '')}"
        for m in report["issues"]["messages"]
        if m["severity"] == 0
    ]
