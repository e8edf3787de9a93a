"""``dreamcad-backend postprocess``: the geometry pipeline on a mesh file, in this process.

Its own module, importing nothing heavy at the top, because the command is timed end to end
(issue 18: at most 3 s for 800k triangles on 2 cores, start-up included): ``main`` builds a
parser with only this command when it is the one asked for, so the process never imports the
server, the model registry, zmq or the job store (~0.3 s on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from shared_protocol.limits import DEFAULT_FACES, DEFAULT_TEXTURE_SIZE

COMMAND = "postprocess"


def add_commands(commands: argparse._SubParsersAction) -> None:
    post = commands.add_parser(COMMAND, help="run the geometry pipeline on a mesh file")
    post.add_argument("mesh", type=Path, help="PLY, OBJ or GLB")
    post.add_argument("-o", "--output", type=Path, required=True)
    post.add_argument("--faces", type=int, default=DEFAULT_FACES)
    post.add_argument("--texture-size", type=int, default=DEFAULT_TEXTURE_SIZE)
    post.add_argument(
        "--keep-inner", action="store_true",
        help="keep surface no outside view can see (hidden inner shells are removed by default)",
    )  # fmt: skip
    post.add_argument(
        "--lods", type=int, default=0, metavar="K",
        help="also write LOD1..LODK (each about half the faces, one shared texture; GLB only)",
    )  # fmt: skip
    post.add_argument(
        "--quads", action="store_true",
        help="remesh to all quads near the face budget (needs pynanoinstantmeshes)",
    )  # fmt: skip
    post.add_argument(
        "--keep-uvs", action="store_true", help="keep the mesh's own UVs instead of unwrapping"
    )
    post.set_defaults(func=run_postprocess)


def run_postprocess(args: argparse.Namespace) -> int:
    from backend.geometry import heap, preload
    from backend.geometry.pipeline import PipelineOptions
    from backend.geometry.postprocess import postprocess_file

    heap.keep_freed_memory()  # one job, then exit: reuse freed pages, not fault in new ones
    heap.freeze_objects()  # and keep the garbage collector off the imported modules' objects
    loader = preload.start()  # the cached kernels load on the other core while the mesh is read

    options = PipelineOptions(
        target_faces=args.faces,
        texture_size=args.texture_size,
        output_format=args.output.suffix.lstrip(".").lower() or "glb",
        keep_inner=args.keep_inner,
        lods=args.lods,
        quads=args.quads,
        keep_uvs=args.keep_uvs,
    )
    try:
        result = postprocess_file(args.mesh, args.output, options, None)
    finally:
        loader.join()  # (long done on a real mesh) never exit in the middle of linking a kernel
    heap.freeze_objects()  # the outputs are written: exit without walking every object again
    levels = ", ".join(f"{level['name']} {level['faces']}" for level in result.lods)
    print(f"wrote {args.output} ({levels or f'{result.faces} faces'})")
    hidden = result.quality.get("inner_faces_removed")
    if hidden:
        print(f"removed {hidden} hidden faces ({result.quality['inner_shells_removed']} shells)")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if getattr(args, "whole_process", False):
        exit_now(0)
    return 0


def exit_now(code: int) -> None:
    """End this one-job process at once, its outputs written and its streams flushed: the
    interpreter's teardown (clearing every module, numba's and the thread pools' exit hooks)
    took ~30 ms of the timed command and leaves nothing behind that the files need."""
    import logging

    logging.shutdown()  # what the exit hooks would have flushed
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
