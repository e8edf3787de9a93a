"""Our TRELLIS stages against upstream's on the tiny configuration: reference numbers made by
upstream's own code (float32) with .upstream/harness, committed as
tests/data/trellis_parity/upstream_tiny.npz (its provenance: README.md beside it). Every stage
within 1e-3 relative, the same occupied voxels, the same mesh vertex and face counts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO / "benchmarks"))

import trellis_parity as parity  # noqa: E402

DATA = REPO / "tests" / "data" / "trellis_parity" / "upstream_tiny.npz"
STAGES = {
    "ss_velocity", "ss_sample", "ss_logits", "ss_coords", "ss_coords_chained", "slat_velocity",
    "slat_sample", "mesh_coords", "mesh_feats", "mesh", "gs_xyz", "gs_features_dc", "gs_scaling",
    "gs_rotation", "gs_opacity", "rf_position", "rf_trivec", "rf_density", "rf_features_dc",
}  # fmt: skip

pytestmark = pytest.mark.skipif(
    not DATA.exists(),
    reason="no upstream reference yet: on a CUDA machine with .upstream carried, run "
    "`bash .upstream/harness/device.sh tiny` from the repo root and commit "
    "$OUT/upstream_tiny.npz as tests/data/trellis_parity/upstream_tiny.npz",
)


def test_every_stage_matches_upstream_on_the_tiny_models(tmp_path: Path) -> None:
    reference, meta = parity.read_reference(DATA)
    folder = parity.write_weights(tmp_path / "weights", "tiny")
    assert meta["weights"] == parity.weights_digest(folder), (
        "the tiny weights differ from those the reference was made with: regenerate it"
    )
    table = parity.compare(parity.our_outputs(folder, reference, "cpu"), reference)
    assert table.keys() >= STAGES, f"stages missing: {sorted(STAGES - table.keys())}"
    failing = {name: row for name, row in table.items() if not row["pass"]}
    assert not failing, parity.format_table(table)
    assert table["mesh"]["vertices"] > 0
