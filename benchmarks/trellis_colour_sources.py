"""TRELLIS's two bake colour sources compared: the mesh decoder's colour grid vs the radiance field.

Random weights in the official layout (``--tiny``: the test configuration; otherwise the
released sizes, about 4.2 GB written to a scratch folder, with the RF decoder at rank 16,
dim 8), loaded through the adapter. For each ``colour_source`` it times ``generate`` (the RF
source adds the RF decoder's pass and the Strivec's hand-over) and the colour field's
evaluation at surface points (what the bake pays per texel), and between the two fields at the
same area-sampled surface points it reports the agreement (mean absolute difference, per-channel
correlation). ``--pipeline`` also bakes both to a GLB and times the bake.

What this cannot say: which texture is better. With random weights both colours are noise from
two unrelated heads; agreement near zero is expected and says nothing of quality. Quality needs
the released weights and a reference: render the baked GLB from the input camera and compare it
with the cut-out (PSNR / LPIPS on the object's pixels), per source, over a set of images.

    .venv/backend/bin/python benchmarks/trellis_colour_sources.py --tiny --device cpu
    .venv/backend/bin/python benchmarks/trellis_colour_sources.py --device cuda --pipeline \\
        --output benchmarks/results/trellis_colour_sources_h200.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from trellis import TRUNK, calibrate_voxels, write_full_size  # noqa: E402

from backend.cancellation import CancelToken  # noqa: E402
from backend.models.base import GenerationRequest, ImagePixels  # noqa: E402
from backend.models.trellis import testing  # noqa: E402
from backend.models.trellis.adapter import RF_DECODER_STEM, TrellisImageAdapter  # noqa: E402
from backend.models.trellis.config import network_spec_from_dict  # noqa: E402
from backend.models.trellis.loading import write_network  # noqa: E402
from benchmarks.common import disc_image  # noqa: E402

RELEASED_RF = {"name": "SLatRadianceFieldDecoder",
               "args": {**TRUNK, "representation_config": {"rank": 16, "dim": 8}}}  # fmt: skip
SOURCES = ("mesh", "radiance_field")


def surface_points(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int = 0):
    """(count, 3) points spread over the surface by area."""
    rng = np.random.default_rng(seed)
    corners = vertices[faces]  # (m, 3, 3)
    areas = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0],
                                    corners[:, 2] - corners[:, 0]), axis=1)  # fmt: skip
    picked = rng.choice(len(faces), count, p=areas / areas.sum())
    a, b = rng.random((2, count, 1))
    flip = a + b > 1
    a, b = np.where(flip, 1 - a, a), np.where(flip, 1 - b, b)
    tri = corners[picked]
    return tri[:, 0] + a * (tri[:, 1] - tri[:, 0]) + b * (tri[:, 2] - tri[:, 0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--voxels", type=int, default=20_000)
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--pipeline", action="store_true")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = "float32" if device.type == "cpu" else args.dtype
    results: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda"
                     else platform.processor() or platform.machine(), "tiny": args.tiny,
                     "dtype": dtype, "threads": torch.get_num_threads()}  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch, torch.no_grad():
        folder = Path(scratch)
        if args.tiny:
            testing.write_tiny_weights(folder, testing.IMAGE_MODEL)
            testing.write_dinov2(folder / "dinov2")
        else:
            write_full_size(folder)
            rf_spec = network_spec_from_dict(RELEASED_RF, "slat_decoder_rf")
            write_network(folder / RF_DECODER_STEM, rf_spec, testing.random_state(
                testing.rf_decoder_layout(rf_spec.config), 9))  # fmt: skip
        adapter = TrellisImageAdapter(folder)
        adapter.component_dirs["dinov2"] = folder / "dinov2"
        adapter.load(str(device), dtype)
        base = dict(testing.TINY_PARAMETERS[testing.IMAGE_MODEL]) if args.tiny else {}
        base["gaussians"] = False
        raws, fields = {}, {}
        for source in SOURCES:
            request = adapter.check_inputs(GenerationRequest(
                task="image", images=(ImagePixels(disc_image()),), seed=1,
                parameters={**base, "colour_source": source}))  # fmt: skip
            if not args.tiny and source == SOURCES[0]:
                results["random_voxels"] = calibrate_voxels(adapter, request, args.voxels)
            seconds = []
            for _ in range(args.runs + 1):  # the first warms up
                start = time.perf_counter()
                raws[source] = adapter.generate(request, lambda *a, **k: None, CancelToken())
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds.append(time.perf_counter() - start)
            results[f"generate_s.{source}"] = round(float(np.median(seconds[1:])), 3)
        raw = raws["mesh"]
        points = surface_points(raw.vertices.astype(np.float64), raw.faces, args.points)
        for source in SOURCES:
            field = raws[source].color_field
            start = time.perf_counter()
            fields[source] = field(points)
            spent = time.perf_counter() - start
            results[f"field_s_per_million_points.{source}"] = round(spent / len(points) * 1e6, 3)
        a, b = fields["mesh"], fields["radiance_field"]
        results["faces"], results["points"] = len(raw.faces), len(points)
        results["mean_abs_difference"] = round(float(np.abs(a - b).mean()), 4)
        results["channel_correlation"] = [round(float(np.corrcoef(a[:, c], b[:, c])[0, 1]), 4)
                                          for c in range(3)]  # fmt: skip
        results["colour_std"] = {s: [round(float(v), 4) for v in fields[s].std(axis=0)]
                                 for s in SOURCES}  # fmt: skip
        if args.pipeline:
            from backend.geometry.pipeline import PipelineOptions, run_pipeline

            for source in SOURCES:
                glb = run_pipeline(raws[source], PipelineOptions(target_faces=20_000,
                                                                 texture_size=1024))
                results[f"bake_s.{source}"] = round(glb.timings_s.get("bake", 0.0), 3)
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
