"""Generate many assets without the UI and save them, laid out in a grid, in one .blend.

    blender --background --python scripts/batch_generate.py -- \
        (--prompts FILE | --images DIR_OR_FILE) (--model MODEL | --compare M1,M2,...) \
        --out scene.blend [options]
    blender --background --python scripts/batch_generate.py -- \
        --meshes DIR --task texture|optimize --out scene.blend [options]
    python scripts/batch_generate.py ...same options...        (with the bpy module installed)

It drives the Dream CAD extension's own operators (dreamcad.select_model, dreamcad.generate),
which wait for each result in background mode, so the batch runs exactly what the panel runs.
The extension must be installed and enabled, or be given with --addon-zip (installed into the
current Blender user folder, as Edit > Preferences > Install from Disk does). Every item is
tried; the .blend is saved with what succeeded, and the exit status is 1 with the reasons if
any item failed, 2 if nothing could start. --render writes a preview PNG (Cycles, CPU).
``--compare`` sends each input to every model listed, one row per input, and writes the figures
as a table beside the .blend (batch_compare.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # batch_compare, render_preview
from batch_compare import compare_all, compare_models, write_table

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
EXIT_FAILED, EXIT_SETUP = 1, 2


class BatchError(Exception):
    """A reason the batch cannot start (exit status 2)."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batch_generate.py", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompts", type=Path, help="text file, one prompt per line")
    source.add_argument("--images", type=Path, help="folder of images (or one image file)")
    source.add_argument("--meshes", type=Path,
                        help="folder of .glb meshes (or one) to --task texture or optimize")
    models = parser.add_mutually_exclusive_group()  # one of them unless --meshes (optimize)
    models.add_argument("--model", help="model id, e.g. inflate or procedural (--task optimize: "
                        "mesh-optimize unless given)")
    models.add_argument("--compare", type=compare_models, metavar="MODEL,MODEL,...",
                        help="send each input to all these models, side by side, and write "
                        "their figures to <out>.compare.json / .csv")
    parser.add_argument("--task", choices=("texture", "optimize"), default="optimize",
                        help="with --meshes: what to do to each mesh (default optimize)")
    parser.add_argument("--look-image", type=Path, help="--task texture: the image to paint from")
    parser.add_argument("--look-prompt", help="--task texture: a prompt (model image-bridge)")
    parser.add_argument("--lods", type=int, default=0, help="with --meshes: LOD1..LODK too")
    parser.add_argument("--quads", action="store_true", help="with --meshes: quad remesh")
    parser.add_argument("--keep-inner", action="store_true",
                        help="with --meshes: keep hidden inner shells")
    parser.add_argument("--keep-uvs", action="store_true",
                        help="with --meshes: keep each mesh's own UVs")
    parser.add_argument("--out", type=Path, required=True, help=".blend file to write")
    parser.add_argument("--address", help="backend address (default: the add-on's preference)")
    parser.add_argument("--addon-zip", type=Path, help="install this extension build first")
    parser.add_argument("--start-backend", type=Path, metavar="PYTHON",
                        help="start a local backend with this interpreter (the add-on's Start "
                        "Local Backend) and stop it at the end")
    parser.add_argument("--backend-data", type=Path, help="data folder of that local backend")
    parser.add_argument("--results", type=Path, help="where GLB files and previews go")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="model parameter (VALUE read as JSON, else text); repeatable")
    parser.add_argument("--faces", type=int, help="target faces")
    parser.add_argument("--texture-size", type=int, choices=(256, 512, 1024, 2048, 4096))
    parser.add_argument("--seed", type=int, help="fixed seed (default: random)")
    parser.add_argument("--size", type=float, default=1.0, help="scale each asset to this (m)")
    parser.add_argument("--spacing", type=float, default=1.5, help="grid spacing, x size")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per asset")
    parser.add_argument("--connect-timeout", type=float, default=120.0,
                        help="seconds to wait for the backend to answer (it may be starting)")
    parser.add_argument("--render", type=Path, help="also render a preview PNG here")
    parser.add_argument("--keep-scene", action="store_true",
                        help="add to the open file instead of an empty one")
    return parser.parse_args(argv)


def script_args() -> list[str]:
    """Blender passes its own arguments too: ours are those after `--`."""
    return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]


def batch_inputs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """[(task, prompt or image path)] in order; BatchError when there is nothing to do."""
    if args.prompts is not None:
        if not args.prompts.is_file():
            raise BatchError(f"prompt file {args.prompts} not found")
        lines = [line.strip() for line in args.prompts.read_text().splitlines()]
        items = [("text", line) for line in lines if line and not line.startswith("#")]
    else:
        folder = args.images
        if folder.is_file():
            files = [folder]
        elif folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            raise BatchError(f"image folder {folder} not found")
        items = [("image", str(path.resolve())) for path in files]
    if not items:
        raise BatchError("no prompts or images to generate from")
    return items


def parse_params(pairs: list[str]) -> dict[str, object]:
    params: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise BatchError(f"--param {pair!r} must look like NAME=VALUE")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    return params


def grid_position(index: int, count: int, pitch: float) -> tuple[float, float, float]:
    """Row-major grid centred on the origin: ``count`` cells, ``pitch`` metres apart."""
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    row, column = divmod(index, columns)
    return ((column - (columns - 1) / 2) * pitch, ((rows - 1) / 2 - row) * pitch, 0.0)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def enable_addon(bpy, zip_path: Path | None) -> str:
    """The enabled Dream CAD extension's module name, installing ``zip_path`` first if given."""
    if zip_path is not None:
        if not zip_path.is_file():
            raise BatchError(f"extension zip {zip_path} not found (scripts/build_addon.py)")
        bpy.ops.extensions.package_install_files(
            filepath=str(zip_path.resolve()), repo="user_default", enable_on_install=True
        )
    enabled = [addon.module for addon in bpy.context.preferences.addons
               if addon.module.split(".")[-1] == "dreamcad"]
    if not enabled:  # installed but not enabled (background Blender does not save prefs)
        for repo in bpy.context.preferences.extensions.repos:
            if repo.enabled and (Path(repo.directory) / "dreamcad").is_dir():
                module = f"bl_ext.{repo.module}.dreamcad"
                bpy.ops.preferences.addon_enable(module=module)
                enabled = [module]
                break
    if not enabled:
        raise BatchError("the Dream CAD extension is not enabled: install it in Blender, or "
                         "pass --addon-zip dist/dreamcad-<version>.zip")
    return enabled[0]


def configure(bpy, settings, args: argparse.Namespace, params: dict[str, object]) -> None:
    """Set the panel's settings for this batch (the same fields a user would set)."""
    settings.randomize_seed = args.seed is None
    if args.seed is not None:
        settings.seed = args.seed
    if args.faces is not None:
        settings.target_faces = args.faces
    if args.texture_size is not None:
        settings.texture_size = str(args.texture_size)
    settings.placement = "CURSOR"
    settings.use_target_size = args.size > 0
    settings.target_size = args.size
    known = {item.name: item for item in settings.parameters}
    for name, value in params.items():
        if name not in known:
            raise BatchError(f"model {args.model} has no parameter {name!r}; it has: "
                             f"{', '.join(known) or 'none'}")
        kind = known[name].kind
        field = {"int": "int_value", "float": "float_value", "bool": "bool_value",
                 "choice": "choice_value"}.get(kind, "str_value")
        setattr(known[name], field, value)


def run(args: argparse.Namespace) -> int:
    import bpy

    items = batch_inputs(args) if args.meshes is None else []
    params = parse_params(args.param)
    if args.meshes is None and not (args.model or args.compare):
        raise BatchError("--model or --compare is needed with --prompts or --images")
    if args.meshes is not None and args.compare:
        raise BatchError("--compare takes --prompts or --images, not --meshes")
    addon_name = enable_addon(bpy, args.addon_zip)
    if not args.keep_scene:
        bpy.ops.wm.read_homefile(use_empty=True)
    prefs = bpy.context.preferences.addons[addon_name].preferences
    if args.address:
        prefs.backend_address = args.address
    elif args.start_backend:
        prefs.backend_address = f"tcp://127.0.0.1:{free_port()}"
    if args.results:
        prefs.output_directory = str(args.results.resolve())
    try:
        if args.start_backend:
            prefs.backend_python = str(args.start_backend.absolute())
            prefs.backend_data_dir = str(args.backend_data.resolve()) if args.backend_data else ""
            try:
                bpy.ops.dreamcad.start_local_backend()
            except RuntimeError as error:
                raise BatchError(str(error)) from None
        if args.meshes is not None:
            return meshes_all(bpy, args, prefs.backend_address)
        return generate_all(bpy, args, items, params, addon_name)
    finally:
        if bpy.ops.dreamcad.stop_local_backend.poll():  # only a backend we started
            bpy.ops.dreamcad.stop_local_backend()


def meshes_all(bpy, args: argparse.Namespace, address: str) -> int:
    """--meshes: texture or optimize each GLB through the backend; save the scene."""
    from batch_meshes import mesh_items, optimize_all

    try:
        count = len(mesh_items(args.meshes))
    except ValueError as error:
        raise BatchError(str(error)) from None
    if args.task == "texture" and not (args.look_image or args.look_prompt):
        raise BatchError("--task texture needs --look-image or --look-prompt")
    if args.task == "texture" and not args.model:
        raise BatchError("--task texture needs --model (e.g. hunyuan3d-2mini, or image-bridge "
                         "with --look-prompt)")
    done, failures = optimize_all(bpy, args, address, grid_position)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(args.out.resolve()))
    print(f"batch: saved {args.out.resolve()}", flush=True)
    if failures:
        print(f"batch: {len(failures)} of {count} failed:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return EXIT_FAILED
    return 0 if done else EXIT_FAILED


def generate_all(bpy, args: argparse.Namespace, items: list[tuple[str, str]],
                 params: dict[str, object], addon_name: str) -> int:
    try:
        bpy.ops.dreamcad.connect(timeout_s=args.connect_timeout)
        # With --compare the panel shows the first model's parameters; the others take those
        # they share (compare_jobs.shared_parameters).
        bpy.ops.dreamcad.select_model(model_id=args.model or args.compare[0])
    except RuntimeError as error:  # the operators' ERROR reports: what and how to fix
        raise BatchError(str(error)) from None
    scene = bpy.context.scene
    settings = scene.dreamcad
    configure(bpy, settings, args, params)
    failures: list[str] = []
    pitch = args.spacing * (args.size if args.size > 0 else 1.0)
    if args.compare:
        return compare_batch(bpy, sys.modules[addon_name], args, items, pitch, failures)
    for index, (task, value) in enumerate(items):
        settings.task = task
        settings.prompt = value if task == "text" else ""
        settings.image_source = "FILE"
        settings.image_path = value if task != "text" else ""
        scene.cursor.location = grid_position(index, len(items), pitch)
        label = value if task == "text" else Path(value).name
        try:
            bpy.ops.dreamcad.generate(wait=True, timeout_s=args.timeout)
        except RuntimeError as error:
            failures.append(f"{label}: {error}")
            print(f"batch: FAILED {label}: {error}", file=sys.stderr, flush=True)
            continue
        obj = bpy.context.view_layer.objects.active
        print(f"batch: {label} -> {obj.name} (job {obj['dreamcad_job_id']}, "
              f"seed {obj['dreamcad_seed']})", flush=True)
    return finish(bpy, args, len(items), failures)


def compare_batch(bpy, addon, args: argparse.Namespace, items: list[tuple[str, str]],
                  pitch: float, failures: list[str]) -> int:  # fmt: skip
    table = compare_all(bpy, addon, args, items, pitch, failures)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for path in write_table(table, args.out):
        print(f"batch: wrote {path.resolve()}", flush=True)
    expected = len(items) * len(args.compare)
    return finish(bpy, args, expected, failures, collection="Dream CAD Compare")


def finish(bpy, args: argparse.Namespace, count: int, failures: list[str],
           collection: str = "Dream CAD") -> int:  # fmt: skip
    """Save the .blend, render it if asked, and report what failed; the exit status."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(args.out.resolve()))
    print(f"batch: saved {args.out.resolve()}", flush=True)
    if args.render is not None and count > len(failures):
        from render_preview import render_preview

        render_preview(bpy, args.render, collection=collection)
        print(f"batch: rendered {args.render.resolve()}", flush=True)
    if failures:
        print(f"batch: {len(failures)} of {count} failed:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def main() -> int:
    args = parse_args(script_args())
    try:
        return run(args)
    except BatchError as error:
        print(f"batch: error: {error}", file=sys.stderr, flush=True)
        return EXIT_SETUP


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.exit(code)
