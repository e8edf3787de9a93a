"""The ``--meshes DIR`` path of batch_generate.py: texture or optimize every GLB in a folder.

Each ``*.glb`` is sent as it is (protocol 3's ``mesh``) to the backend the batch uses, with
``--task texture`` (and the look: ``--look-image`` or ``--look-prompt``) or ``--task optimize``
and the game-ready options; each result is imported into the scene at its grid cell, tagged
with its job id and source file. It talks to the backend through the protocol's own client
rather than the add-on's selection operators, so a batch needs no objects in a scene to start
from and runs the same requests the CLI sends.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mesh_items(folder: Path) -> list[Path]:
    """The GLB files of ``folder`` (or the one file), sorted; ValueError when there are none."""
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise ValueError(f"mesh folder {folder} not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".glb")
    if not files:
        raise ValueError(f"no .glb files in {folder}")
    return files


def _protocol():
    try:
        import shared_protocol  # noqa: F401  (the add-on's copy, or the repository's)
    except ImportError:
        sys.path.insert(0, str(ROOT))
    from shared_protocol import client, messages

    return client, messages


def submit_request(args, path: Path, messages):
    """The SubmitRequest for one mesh file."""
    images = ()
    if args.task == "texture" and args.look_image is not None:
        images = (messages.ImageInput(data=args.look_image.read_bytes()),)
    model = args.model or (messages.OPTIMIZE_MODEL if args.task == "optimize" else None)
    fields = {
        "model": model,
        "task": args.task,
        "prompt": args.look_prompt or "",
        "images": images,
        "mesh": messages.MeshInput(data=path.read_bytes(), name=path.stem),
        "keep_inner": args.keep_inner,
        "lods": args.lods,
        "quads": args.quads,
        "keep_uvs": args.keep_uvs,
        "name": path.stem,
    }
    if args.faces is not None:
        fields["target_faces"] = args.faces
    if args.texture_size is not None:
        fields["texture_size"] = args.texture_size
    if args.seed is not None:
        fields["seed"] = args.seed
    return messages.SubmitRequest(**fields)


def run_one(client, request, timeout_s: float, messages):
    """(job id, result event); RuntimeError with the backend's coded reason when it fails."""
    from shared_protocol.errors import ProtocolError

    try:
        reply = client.request(request, timeout_s=60)
    except ProtocolError as error:
        raise RuntimeError(error.info.describe()) from None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        envelope = client.receive(timeout_s=0.5)
        message = envelope and envelope.message
        if getattr(message, "job_id", None) != reply.job_id:
            continue
        if isinstance(message, messages.JobFailedEvent):
            raise RuntimeError(message.error.describe())
        if isinstance(message, messages.ResultEvent):
            return reply.job_id, message
    raise RuntimeError(f"job {reply.job_id} did not finish in {timeout_s:.0f} s")


def import_result(bpy, glb: Path, location, tags: dict[str, str]) -> list:
    """Import ``glb``; its top-level objects go to ``location`` and carry ``tags``."""
    before = set(bpy.data.objects)
    bpy.ops.import_scene.gltf(filepath=str(glb))
    new = [obj for obj in bpy.data.objects if obj not in before]
    for obj in new:
        for key, value in tags.items():
            obj[key] = value
        if obj.parent is None:
            obj.location = location
    return new


def optimize_all(bpy, args, address: str, grid_position) -> tuple[int, list[str]]:
    """Send every mesh; (number done, failure lines)."""
    client_module, messages = _protocol()
    files = mesh_items(args.meshes)
    results = (args.results or Path(args.out).parent / "results").resolve()
    results.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    pitch = args.spacing * (args.size if args.size > 0 else 1.0)
    done = 0
    with client_module.BackendClient(address) as client:
        for index, path in enumerate(files):
            try:
                request = submit_request(args, path, messages)
                job_id, result = run_one(client, request, args.timeout, messages)
            except (RuntimeError, ValueError, OSError) as error:
                failures.append(f"{path.name}: {error}")
                print(f"batch: FAILED {path.name}: {error}", file=sys.stderr, flush=True)
                continue
            out = results / f"{path.stem}_{args.task}.glb"
            out.write_bytes(result.asset)
            tags = {"dreamcad_job_id": job_id, "dreamcad_source_mesh": path.name,
                    "dreamcad_task": args.task}  # fmt: skip
            imported = import_result(bpy, out, grid_position(index, len(files), pitch), tags)
            lods = ", ".join(f"{lod.name} {lod.faces}" for lod in result.manifest.lods)
            print(f"batch: {path.name} -> {len(imported)} objects (job {job_id}, "
                  f"{lods or f'{result.manifest.faces} faces'})", flush=True)  # fmt: skip
            done += 1
    return done, failures
