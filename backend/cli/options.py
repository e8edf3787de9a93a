"""Options several subcommands share, and turning them into Settings and key objects."""

from __future__ import annotations

import argparse
from pathlib import Path

import zmq.auth

from backend.settings import DEFAULT_ADDRESS, Settings, default_data_dir
from shared_protocol.client import CurveKeys
from shared_protocol.framing import Limits
from shared_protocol.messages import (
    DEFAULT_FACES,
    DEFAULT_FORMAT,
    DEFAULT_TEXTURE_SIZE,
    OPTIMIZE_MODEL,
    MeshInput,
)


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="jobs and results (default $DREAMCAD_DATA_DIR or XDG data dir)",
    )


def add_weights(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="MODEL=PATH",
        help="use weights from a local folder (MODEL:COMPONENT=PATH for a component), repeatable",
    )


def add_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help=f"default {DEFAULT_ADDRESS}")
    parser.add_argument(
        "--curve-keys",
        type=Path,
        metavar="DIR",
        help="folder with server.key and client.key_secret for a remote backend",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a reply")


def weights_from(args: argparse.Namespace) -> dict[str, Path]:
    paths = {}
    for item in args.weights:
        model_id, sep, path = item.partition("=")
        if not sep or not model_id or not path:
            raise SystemExit(f"--weights takes MODEL=PATH, got {item!r}")
        paths[model_id] = Path(path).expanduser()
    return paths


def settings_from(args: argparse.Namespace) -> Settings:
    values: dict = {"data_dir": args.data_dir or default_data_dir()}
    if hasattr(args, "address"):
        values["address"] = args.address
    if getattr(args, "curve_keys", None):
        values["curve_dir"] = args.curve_keys
    if getattr(args, "max_frame_mb", None):
        values["limits"] = Limits(max_frame_bytes=int(args.max_frame_mb * 2**20))
    if getattr(args, "devices", None):
        # --device cuda:0,cuda:1 and --device cuda:0 --device cuda:1 say the same
        values["devices"] = tuple(d for ds in args.devices for d in ds.split(",") if d)
    if budgets := getattr(args, "vram_budget_mb", None):
        if len(budgets) == 1:
            values["vram_budget_mb"] = budgets[0]
        else:
            values["device_budgets_mb"] = budgets
    if getattr(args, "no_warmup", False):
        values["warm_up_kernels"] = False
    if getattr(args, "min_free_mb", None) is not None:
        values["min_free_mb"] = args.min_free_mb
    if getattr(args, "metrics_address", None):
        values["metrics_address"] = args.metrics_address
    if getattr(args, "max_queued_per_client", None) is not None:
        values["max_queued_per_client"] = args.max_queued_per_client
    if getattr(args, "operator_keys", None):
        values["operator_keys"] = tuple(args.operator_keys)
    return Settings(**values)


def client_keys(folder: Path | None) -> CurveKeys | None:
    """Client-side CURVE keys from a folder holding server.key and one *.key_secret."""
    if folder is None:
        return None
    server_public, _ = zmq.auth.load_certificate(folder / "server.key")
    secrets = sorted(p for p in folder.glob("*.key_secret") if p.name != "server.key_secret")
    if not secrets:
        raise SystemExit(f"{folder} has no client *.key_secret; run `dreamcad-backend keys`")
    public, secret = zmq.auth.load_certificate(secrets[0])
    return CurveKeys(server_public=server_public, client_public=public, client_secret=secret)


def add_request(parser: argparse.ArgumentParser) -> None:
    """What to generate: shared by `generate` (standalone) and `submit` (remote)."""
    parser.add_argument(
        "--model", help=f"model id (see `models`); --task optimize needs none ({OPTIMIZE_MODEL})"
    )
    parser.add_argument(
        "--task", choices=("text", "image", "multi_image", "texture", "optimize"),
        help="default: from the inputs (--mesh with an image or prompt: texture; --mesh or "
        "--source-job alone: optimize; images: image / multi_image; else text)",
    )
    parser.add_argument("--mesh", type=Path, help="your mesh (.glb) to texture or optimize")
    parser.add_argument(
        "--source-job", metavar="ID", help="optimize a finished job's raw output again"
    )
    add_game_ready(parser)
    parser.add_argument("--prompt", default="", help="text prompt")
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        type=Path,
        help="input image, repeatable for multi-view models",
    )
    parser.add_argument(
        "--view",
        action="append",
        default=[],
        help="view of each --image (front, left, back, right), in order",
    )
    parser.add_argument("--seed", type=int, help="default: random")
    parser.add_argument(
        "--faces", type=int, default=DEFAULT_FACES, help=f"target faces (default {DEFAULT_FACES})"
    )
    parser.add_argument(
        "--texture-size", type=int, default=DEFAULT_TEXTURE_SIZE,
        help=f"default {DEFAULT_TEXTURE_SIZE}",
    )
    parser.add_argument("--format", default=DEFAULT_FORMAT, choices=("glb", "obj", "ply", "stl"))
    parser.add_argument("--no-pbr", action="store_true", help="base colour only")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="model parameter (VALUE parsed as JSON, else a string), repeatable",
    )
    parser.add_argument("-o", "--output", type=Path, help="where to write the asset")


def add_game_ready(parser: argparse.ArgumentParser) -> None:
    """The game-ready options, for generate, submit and postprocess alike."""
    parser.add_argument(
        "--keep-inner", action="store_true",
        help="keep surface no outside view can see (removed by default)",
    )
    parser.add_argument(
        "--lods", type=int, default=0, metavar="K",
        help="also write LOD1..LODK, each about half the faces of the one before (GLB only)",
    )
    parser.add_argument(
        "--quads", action="store_true", help="quad-dominant remesh instead of decimation"
    )
    parser.add_argument(
        "--keep-uvs", action="store_true", help="keep the mesh's own UVs instead of unwrapping"
    )


def model_from(args: argparse.Namespace) -> str:
    if args.model:
        return args.model
    if task_from(args) == "optimize":
        return OPTIMIZE_MODEL
    raise SystemExit("--model is needed (see `models`); only --task optimize has a default")


def mesh_fields(args: argparse.Namespace) -> dict:
    """The SubmitRequest fields of protocol 3 (mesh in, game-ready options) from the options."""
    mesh = None
    if args.mesh is not None:
        if not args.mesh.is_file():
            raise SystemExit(f"--mesh {args.mesh}: no such file")
        mesh = MeshInput(data=args.mesh.read_bytes(), name=args.mesh.stem)
    return {
        "mesh": mesh,
        "source_job": args.source_job,
        "keep_inner": args.keep_inner,
        "lods": args.lods,
        "quads": args.quads,
        "keep_uvs": args.keep_uvs,
    }


def task_from(args: argparse.Namespace) -> str:
    if getattr(args, "task", None):
        return args.task
    if getattr(args, "mesh", None) is not None:
        return "texture" if args.image or args.prompt else "optimize"
    if getattr(args, "source_job", None):
        return "optimize"
    if len(args.image) > 1:
        return "multi_image"
    return "image" if args.image else "text"


def params_from(args: argparse.Namespace) -> dict:
    import json

    params = {}
    for item in args.param:
        name, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--param takes NAME=VALUE, got {item!r}")
        try:
            params[name] = json.loads(raw)
        except json.JSONDecodeError:
            params[name] = raw
    return params


def views_from(args: argparse.Namespace) -> list[str]:
    default = ["front", "left", "back", "right"]
    return [args.view[i] if i < len(args.view) else default[i % 4] for i in range(len(args.image))]


def budget_list(text: str) -> tuple[int, ...]:
    """``--vram-budget-mb``: one MB value, or one per device separated by commas."""
    try:
        budgets = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not MB or MB,MB,...: {text!r}") from None
    if any(b <= 0 for b in budgets):
        raise argparse.ArgumentTypeError("VRAM budgets are positive MB")
    return budgets
