"""TRELLIS parity with upstream, stage by stage, and the network time of both (issue 13).

Upstream's code (microsoft/TRELLIS) never enters the repo: a harness outside it runs upstream's
networks on checkpoint files this module writes (``write_weights``: the tiny test configuration
or the released sizes, random weights in the official layout) and on inputs this module draws
(``draw_inputs``: CPU generators with fixed seeds, then moved, so CPU and GPU runs see the same
numbers), and saves every stage's inputs and outputs to an ``.npz``. This script reads that file,
runs OUR stages on the same files and the same inputs (each stage on upstream's input to it, so
errors do not compound; plus our own chain to the occupied voxels) and compares:

- ``ss_velocity``: the sparse-structure flow at a fixed t; ``ss_sample``: the guided Euler
  sampling from fixed noise; ``ss_logits`` and ``ss_coords`` (the occupied voxels, as a set);
- ``slat_velocity`` and ``slat_sample`` on fixed voxels (upstream's occupied voxels; at full
  size its ``--voxels`` highest logits, as a real model marks a shell, not a third of the grid);
- the decoders on upstream's latent: mesh features and the FlexiCubes mesh (vertex and face
  counts, vertices, colours), the Gaussians' parameters, the radiance field's parameters.

Figures: max |a - b| and max |a - b| / max |b| (b: upstream), pass at 1e-3 relative. ``--time``
also times our networks (both flows sampling + all decoders) in ``--dtype`` after a warm-up,
with peak CUDA memory, as the upstream harness times its own. DINOv2 (full size, ``--dinov2``)
is compared with transformers' ``Dinov2WithRegistersModel`` on the same files, upstream's hub
code not being available offline.

    python benchmarks/trellis_parity.py --reference OUT/upstream_tiny.npz --weights W --size tiny
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.models.sparse import SparseTensor  # noqa: E402
from backend.models.trellis import testing  # noqa: E402
from backend.models.trellis.compiled import compile_blocks, should_compile  # noqa: E402
from backend.models.trellis.config import (  # noqa: E402
    GAUSSIAN_DECODER,
    MESH_DECODER,
    RF_DECODER,
    SLAT_FLOW,
    SS_DECODER,
    SS_FLOW,
    TINY_RF_DECODER,
    NetworkSpec,
    network_spec_from_dict,
    read_pipeline_config,
)
from backend.models.trellis.loading import load_network, write_network  # noqa: E402
from backend.models.trellis.mesh_extraction import features_to_mesh  # noqa: E402
from backend.models.trellis.sampler import (  # noqa: E402
    FlowEulerGuidanceIntervalSampler,
    SamplerSettings,
)
from backend.models.trellis.ss_decoder import occupied_coords  # noqa: E402
from backend.models.trellis.velocity import DenseFlowVelocity, SparseFlowVelocity  # noqa: E402

TOLERANCE = 1e-3  # relative, float32
COND_TOKENS = 1374  # DINOv2 ViT-L/14-reg at 518 px: CLS + 4 registers + 37^2 patches
FIXED_T = 0.6  # the single-velocity stages' t (the network sees 1000 t)
FULL_VOXELS = 20_000  # full size: about the shell a real model marks in its 64^3 grid
ROLES = (SS_FLOW, SS_DECODER, SLAT_FLOW, MESH_DECODER, GAUSSIAN_DECODER, RF_DECODER)
RF_STEM = "ckpts/slat_dec_rf_swin8_B_64l8r16_fp16"
RELEASED_RF = {"name": "SLatRadianceFieldDecoder", "args": {
    "resolution": 64, "model_channels": 768, "latent_channels": 8, "num_blocks": 12,
    "num_heads": 12, "mlp_ratio": 4, "attn_mode": "swin", "window_size": 8, "use_fp16": True,
    "representation_config": {"rank": 16, "dim": 8}}}  # fmt: skip


# --- the shared files and inputs (the upstream harness imports these) ----------------------------


def write_weights(folder: Path, size: str) -> Path:
    """The image model's files with random weights (``tiny`` or ``full``) and its radiance-field
    decoder; a folder that already holds them is left as it is."""
    if (folder / "pipeline.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    if size == "tiny":
        testing.write_tiny_weights(folder, testing.IMAGE_MODEL)
        spec, config = NetworkSpec("SLatRadianceFieldDecoder", TINY_RF_DECODER), TINY_RF_DECODER
    elif size == "full":
        # benchmarks/trellis.py by its path: upstream's ``trellis`` package may be importable here
        import importlib.util

        loader = importlib.util.spec_from_file_location(
            "dreamcad_trellis_benchmark", REPO / "benchmarks" / "trellis.py"
        )
        benchmark = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(benchmark)
        benchmark.write_full_size(folder)
        spec = network_spec_from_dict(RELEASED_RF, RF_DECODER)
        config = spec.config
    else:
        raise ValueError(f"size must be tiny or full, got {size!r}")
    write_network(folder / RF_STEM, spec, testing.radiance_field_decoder_state(config, seed=8))
    return folder


def stems(folder: Path) -> dict[str, Path]:
    """{role: checkpoint stem (no suffix)} of the six networks."""
    models = read_pipeline_config(folder).models
    return {role: folder / (models[role] if role != RF_DECODER else RF_STEM) for role in ROLES}


def weights_digest(folder: Path) -> dict[str, str]:
    """sha256 of each network's .safetensors: a reference only holds for the same weights."""
    return {
        role: hashlib.sha256(stem.with_suffix(".safetensors").read_bytes()).hexdigest()
        for role, stem in stems(folder).items()
    }


def sampler_settings(folder: Path) -> tuple[SamplerSettings, SamplerSettings]:
    """pipeline.json's structure and latent sampler settings (both sides use these)."""
    config = read_pipeline_config(folder)
    return tuple(  # type: ignore[return-value]
        SamplerSettings(s.steps, s.cfg_strength, tuple(s.cfg_interval), s.rescale_t)
        for s in (config.sparse_structure_sampler, config.slat_sampler)
    )


def network_args(folder: Path, role: str) -> dict:
    """The ``{"name", "args"}`` JSON of a network."""
    return json.loads(stems(folder)[role].with_suffix(".json").read_text(encoding="utf-8"))


def draw_inputs(folder: Path) -> dict[str, np.ndarray]:
    """Condition, structure noise and t, each from its own seeded CPU generator."""
    ss = network_args(folder, SS_FLOW)["args"]
    side = ss["resolution"]

    def normal(seed: int, *shape: int) -> np.ndarray:
        return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).numpy()

    return {
        "in.cond": normal(11, 1, COND_TOKENS, ss["cond_channels"]),
        "in.neg_cond": np.zeros((1, COND_TOKENS, ss["cond_channels"]), np.float32),
        "in.ss_noise": normal(12, 1, ss["in_channels"], side, side, side),
        "in.t": np.array([1000 * FIXED_T], np.float32),
    }


def latent_noise(count: int, channels: int) -> np.ndarray:
    """The structured latent's noise for ``count`` voxels (seeded CPU generator)."""
    return torch.randn(count, channels, generator=torch.Generator().manual_seed(13)).numpy()


def latent_coords(logits: np.ndarray, limit: int | None) -> np.ndarray:
    """Voxels for the SLat stages: the occupied ones (logit > 0), or when more than ``limit``
    the ``limit`` highest logits, as (N, 4) int32 rows sorted by (batch, x, y, z)."""
    flat = logits.reshape(-1)
    if limit is None or int((flat > 0).sum()) <= limit:
        return occupied_coords(torch.from_numpy(logits)).numpy()
    threshold = np.partition(flat, flat.size - limit)[flat.size - limit]
    return occupied_coords(torch.from_numpy(logits - threshold + 1e-12)).numpy()


def latent_stats(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    config = read_pipeline_config(folder)
    return np.array(config.slat_mean, np.float32), np.array(config.slat_std, np.float32)


class Timer:
    """Device-synchronised wall time of named parts, collected over repeats."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.runs = device, []

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self, parts: dict[str, Callable[[], object]]) -> None:
        times = {}
        for name, part in parts.items():
            self.sync()
            start = time.perf_counter()
            part()
            self.sync()
            times[name] = time.perf_counter() - start
        self.runs.append(times)

    def summary(self, network: tuple[str, ...]) -> dict:
        """median / min / max per part and of the network total (the sum over ``network``)."""
        rows = [{**r, "network": sum(r[n] for n in network)} for r in self.runs]
        return {
            name: {
                "median_s": round(statistics.median(r[name] for r in rows), 4),
                "min_s": round(min(r[name] for r in rows), 4),
                "max_s": round(max(r[name] for r in rows), 4),
            }
            for name in rows[0]
        }


NETWORK_PARTS = ("ss_sample", "ss_decoder", "slat_sample", "mesh_decoder", "gs_decoder",
                 "rf_decoder")  # fmt: skip


# --- our side ------------------------------------------------------------------------------------


class OurStages:
    """Our six networks from ``folder`` on ``device`` (torso in ``dtype``), stage by stage."""

    def __init__(self, folder: Path, device: torch.device, dtype: torch.dtype) -> None:
        self.folder, self.device = folder, device
        self.nets = {
            role: load_network(stem, device, dtype)[0] for role, stem in stems(folder).items()
        }
        self.ss_settings, self.slat_settings = sampler_settings(folder)
        mean, std = latent_stats(folder)
        self.mean = torch.from_numpy(mean).to(device)[None]
        self.std = torch.from_numpy(std).to(device)[None]
        self.sampler = FlowEulerGuidanceIntervalSampler()

    def tensor(self, value: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(value)).to(self.device)

    def ss_velocity(self, noise, t, cond) -> torch.Tensor:
        return self.nets[SS_FLOW](noise, t, cond)

    def ss_sample(self, noise, cond, neg_cond) -> torch.Tensor:
        flow = self.nets[SS_FLOW]
        return self.sampler.sample(DenseFlowVelocity(flow), noise, cond, neg_cond, self.ss_settings)

    def ss_decoder(self, z) -> torch.Tensor:
        return self.nets[SS_DECODER](z)

    def slat_velocity(self, coords, feats, t, cond) -> torch.Tensor:
        return self.nets[SLAT_FLOW](SparseTensor(feats, coords), t, cond).feats

    def slat_sample(self, coords, noise, cond, neg_cond) -> torch.Tensor:
        velocity = SparseFlowVelocity(self.nets[SLAT_FLOW], coords)
        feats = self.sampler.sample(velocity, noise, cond, neg_cond, self.slat_settings)
        return feats * self.std + self.mean

    def mesh_decoder(self, coords, slat) -> SparseTensor:
        return self.nets[MESH_DECODER](SparseTensor(slat, coords))

    def gs_decoder(self, coords, slat):
        decoder = self.nets[GAUSSIAN_DECODER]
        return decoder.gaussian_parameters(decoder(SparseTensor(slat, coords)))[0]

    def rf_decoder(self, coords, slat):
        decoder = self.nets[RF_DECODER]
        return decoder.radiance_field_parameters(decoder(SparseTensor(slat, coords)))[0]

    def mesh(self, out: SparseTensor):
        resolution = self.nets[MESH_DECODER].out_resolution
        return features_to_mesh(out.coords, out.feats.float(), resolution)


def our_outputs(
    folder: Path, reference: dict[str, np.ndarray], device: torch.device | str = "cpu"
) -> dict[str, np.ndarray]:
    """Every stage of ours in float32 on upstream's inputs to that stage (see the docstring)."""
    device = torch.device(device)
    ours = OurStages(folder, device, torch.float32)
    t, ref = ours.tensor, reference
    cond, neg = t(ref["in.cond"]), t(ref["in.neg_cond"])
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        out["ss_velocity"] = ours.ss_velocity(t(ref["in.ss_noise"]), t(ref["in.t"]), cond)
        own_z = ours.ss_sample(t(ref["in.ss_noise"]), cond, neg)
        out["ss_sample"] = own_z
        logits = ours.ss_decoder(t(ref["ss_sample"]))
        out["ss_logits"] = logits
        out["ss_coords"] = occupied_coords(logits)
        out["ss_coords_chained"] = occupied_coords(ours.ss_decoder(own_z))  # our whole chain
        coords = t(ref["in.slat_coords"]).int()
        out["slat_velocity"] = ours.slat_velocity(
            coords, t(ref["in.slat_noise"]), t(ref["in.t"]), cond
        )
        out["slat_sample"] = ours.slat_sample(coords, t(ref["in.slat_noise"]), cond, neg)
        slat = t(ref["slat_sample"])
        mesh_out = ours.mesh_decoder(coords, slat)
        out["mesh_coords"], out["mesh_feats"] = mesh_out.coords, mesh_out.feats
        mesh = ours.mesh(mesh_out)
        out["mesh_vertices"], out["mesh_faces"] = mesh.vertices, mesh.faces
        out["mesh_colors"] = mesh.colours
        gs = ours.gs_decoder(coords, slat)
        for name in ("xyz", "features_dc", "scaling", "rotation", "opacity"):
            out[f"gs_{name}"] = getattr(gs, name)
        rf = ours.rf_decoder(coords, slat)
        for name in ("position", "trivec", "density", "features_dc"):
            out[f"rf_{name}"] = getattr(rf, name)
    return {k: v.detach().float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy()
            for k, v in out.items()}  # fmt: skip


# --- comparison ----------------------------------------------------------------------------------


def _rows_sorted(coords: np.ndarray) -> np.ndarray:
    return np.lexsort(coords.T[::-1])


def _diff(a: np.ndarray, b: np.ndarray) -> dict:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return {"shape": f"{a.shape} vs {b.shape}", "pass": False}
    diff = float(np.abs(a - b).max()) if a.size else 0.0
    scale = float(np.abs(b).max()) if b.size else 0.0
    rel = diff / scale if scale > 0 else diff
    finite = bool(np.isfinite(a).all())
    return {"max_abs": diff, "max_rel": rel, "pass": finite and rel <= TOLERANCE}


def _coords_equal(a: np.ndarray, b: np.ndarray) -> dict:
    same = a.shape == b.shape and np.array_equal(a[_rows_sorted(a)], b[_rows_sorted(b)])
    return {"count": len(a), "reference_count": len(b), "pass": bool(same)}


def _mesh(ours: dict, ref: dict) -> dict:
    """Counts, then vertices and colours: as ordered, else after sorting the vertices."""
    row = {"vertices": len(ours["mesh_vertices"]),
           "reference_vertices": len(ref["mesh_vertices"]),
           "faces": len(ours["mesh_faces"]), "reference_faces": len(ref["mesh_faces"])}
    counts = row["vertices"] == row["reference_vertices"] and row["faces"] == row[
        "reference_faces"]  # fmt: skip
    if not counts:
        return {**row, "pass": False}
    direct = _diff(ours["mesh_vertices"], ref["mesh_vertices"])
    if direct["pass"]:
        colours = _diff(ours["mesh_colors"], ref["mesh_colors"])
        faces = bool(np.array_equal(ours["mesh_faces"], ref["mesh_faces"]))
        return {**row, "order": "same", "max_abs": direct["max_abs"],
                "max_rel": direct["max_rel"], "colours_max_rel": colours.get("max_rel"),
                "faces_equal": faces, "pass": colours["pass"]}  # fmt: skip
    a, b = ours["mesh_vertices"], ref["mesh_vertices"]
    sa, sb = np.lexsort(np.round(a, 5).T[::-1]), np.lexsort(np.round(b, 5).T[::-1])
    verts = _diff(a[sa], b[sb])
    colours = _diff(ours["mesh_colors"][sa], ref["mesh_colors"][sb])
    return {**row, "order": "sorted", "max_abs": verts.get("max_abs"),
            "max_rel": verts.get("max_rel"), "colours_max_rel": colours.get("max_rel"),
            "pass": verts["pass"] and colours["pass"]}  # fmt: skip


def compare(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, dict]:
    """{stage: figures} for every output both sides have."""
    table: dict[str, dict] = {}
    for name in ours:
        if name.startswith("mesh_") and name not in ("mesh_feats", "mesh_coords"):
            continue
        key = "ss_coords" if name == "ss_coords_chained" else name
        if key not in ref:
            continue
        if name.endswith("coords") or name == "ss_coords_chained":
            table[name] = _coords_equal(ours[name], ref[key])
        elif name == "mesh_feats":  # align rows by voxel: the subdivision order may differ
            oa, ob = _rows_sorted(ours["mesh_coords"]), _rows_sorted(ref["mesh_coords"])
            same = ours["mesh_coords"].shape == ref["mesh_coords"].shape
            table[name] = _diff(ours[name][oa], ref[name][ob]) if same else {"pass": False}
        else:
            table[name] = _diff(ours[name], ref[name])
    if "mesh_vertices" in ours and "mesh_vertices" in ref:
        table["mesh"] = _mesh(ours, ref)
    return table


def format_table(table: dict[str, dict]) -> str:
    lines = [f"{'stage':<20} {'max abs':>11} {'max rel':>11} {'detail':<34} pass"]
    for name, row in table.items():
        detail = ", ".join(f"{k}={v}" for k, v in row.items()
                           if k not in ("max_abs", "max_rel", "pass"))  # fmt: skip
        abs_, rel = row.get("max_abs"), row.get("max_rel")
        lines.append(f"{name:<20} {'' if abs_ is None else f'{abs_:.3e}':>11} "
                     f"{'' if rel is None else f'{rel:.3e}':>11} {detail:<34} "
                     f"{'ok' if row['pass'] else 'FAIL'}")  # fmt: skip
    return "\n".join(lines)


def read_reference(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != "meta"}
        meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
    return arrays, meta


# --- timing and DINOv2 ---------------------------------------------------------------------------


def time_ours(
    folder: Path, ref: dict, device: torch.device, dtype: torch.dtype, repeats: int,
    compiled: bool = False,
) -> dict:
    """Our networks in ``dtype`` on the reference's inputs: warm-up, then ``repeats`` runs;
    ``compiled``: the flows' blocks compiled as the product does on CUDA (two warm-ups)."""
    ours = OurStages(folder, device, dtype)
    if compiled:
        compile_blocks(ours.nets[role] for role in (SS_FLOW, SLAT_FLOW))
    t = ours.tensor
    cond, neg = t(ref["in.cond"]), t(ref["in.neg_cond"])
    noise, coords = t(ref["in.ss_noise"]), t(ref["in.slat_coords"]).int()
    slat_noise, slat = t(ref["in.slat_noise"]), t(ref["slat_sample"])
    z = t(ref["ss_sample"])
    timer = Timer(device)
    mesh_out: list = []
    parts = {
        "ss_sample": lambda: ours.ss_sample(noise, cond, neg),
        "ss_decoder": lambda: ours.ss_decoder(z),
        "slat_sample": lambda: ours.slat_sample(coords, slat_noise, cond, neg),
        "mesh_decoder": lambda: mesh_out.append(ours.mesh_decoder(coords, slat)),
        "gs_decoder": lambda: ours.gs_decoder(coords, slat),
        "rf_decoder": lambda: ours.rf_decoder(coords, slat),
        "flexicubes": lambda: ours.mesh(mesh_out.pop()),
    }
    with torch.no_grad():
        for _ in range(2 if compiled else 1):  # warm-up (compiled: every shape compiled)
            timer.run(parts)
        timer.runs.clear()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(repeats):
            timer.run(parts)
    result = {"parts": timer.summary(NETWORK_PARTS), "repeats": repeats, "dtype": str(dtype),
              "compiled_blocks": compiled}  # fmt: skip
    if device.type == "cuda":
        result["peak_vram_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    return result


def dinov2_against_transformers(folder: Path, device: torch.device) -> dict:
    """Our ViT's x_prenorm tokens vs transformers' last hidden state on the same files."""
    from transformers import Dinov2WithRegistersModel

    from backend.models.trellis.dinov2 import CONFIG_FILE, WEIGHTS_FILE, DinoConfig
    from backend.models.trellis.dinov2 import Dinov2WithRegisters as Ours
    from backend.models.trellis.loading import read_state

    dino = folder / "dinov2"
    config = DinoConfig.from_json(dino / CONFIG_FILE)
    ours = Ours(config)
    ours.load_state_dict(read_state(dino / WEIGHTS_FILE))
    ours = ours.to(device).eval()
    theirs = Dinov2WithRegistersModel.from_pretrained(str(dino)).to(device).eval()
    side = config.image_size
    pixels = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(14))
    with torch.no_grad():
        a = ours(pixels.to(device))
        b = theirs(pixels.to(device), output_hidden_states=True).hidden_states[-1]
    return _diff(a.cpu().numpy(), b.cpu().numpy())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="upstream's .npz")
    parser.add_argument("--weights", type=Path, required=True, help="the folder both sides read")
    parser.add_argument("--size", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--time", action="store_true", help="also time our networks")
    parser.add_argument("--dtype", default="float16", help="the timed torso dtype")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="time with compiled flow blocks (auto: as the product, on CUDA)")
    parser.add_argument("--dinov2", action="store_true", help="ours vs transformers' DINOv2")
    parser.add_argument("--output", type=Path, help="JSON results")
    args = parser.parse_args(argv)
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 parity: no TF32 anywhere
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    write_weights(args.weights, args.size)
    ref, meta = read_reference(args.reference)
    digest = weights_digest(args.weights)
    results: dict = {"size": args.size, "device": str(device), "torch": torch.__version__,
                     "weights_match_reference": meta.get("weights") == digest}  # fmt: skip
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)
    start = time.perf_counter()
    table = compare(our_outputs(args.weights, ref, device), ref)
    results["parity_s"] = round(time.perf_counter() - start, 2)
    results["stages"] = table
    results["all_pass"] = all(row["pass"] for row in table.values())
    print(format_table(table), flush=True)
    if args.dinov2:
        results["dinov2_vs_transformers"] = dinov2_against_transformers(args.weights, device)
        print("dinov2 vs transformers:", results["dinov2_vs_transformers"], flush=True)
    if args.time:
        results["timing"] = time_ours(
            args.weights, ref, device, getattr(torch, args.dtype), args.repeats,
            compiled=should_compile(device) if args.compile == "auto" else args.compile == "on",
        )
        results["upstream_timing"] = meta.get("timing")
        print(json.dumps(results["timing"], indent=1), flush=True)
    text = json.dumps(results, indent=1, default=str)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    return 0 if results["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
