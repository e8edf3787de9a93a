"""``dreamcad-backend bench``: the standard inputs through each installed model (or --models),
one run per input and seed -> a table, ``<out>/bench.json`` and plots; ``--compare-to OLD.json``
flags any stage 10 % slower or any production figure worse, and then exits 3."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from backend.cli.options import add_weights, weights_from

EXIT_REGRESSION = 3


def add_commands(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench", help="standard inputs through the installed models: times, VRAM, figures"
    )
    bench.add_argument("--models", help="comma-separated model ids (default: every installed)")
    bench.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    bench.add_argument("--out", type=Path, default=Path("bench"), help="folder for JSON + plots")
    bench.add_argument("--compare-to", type=Path, metavar="OLD.json")
    bench.add_argument("--device", help="cpu, cuda:0, ... (default: first GPU, else cpu)")
    bench.add_argument("--faces", type=int, default=20_000)
    bench.add_argument("--texture-size", type=int, default=1024)
    bench.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the kernel warm-up (the first run then pays numba's load)",
    )
    add_weights(bench)
    bench.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from backend.bench import report, runs
    from backend.models.registry import ModelRegistry
    from backend.telemetry import detect_devices

    old = json.loads(args.compare_to.read_text()) if args.compare_to else None
    registry = ModelRegistry(weights_paths=weights_from(args))
    wanted = [m.strip() for m in args.models.split(",")] if args.models else None
    models = runs.bench_models(registry, wanted)
    if not models:
        raise SystemExit("no installed model has a task the bench has inputs for")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    device = args.device or detect_devices()[0]
    if not args.no_warmup:  # numba's kernels load (or compile) here, not in the first run
        from backend.geometry.warmup import warm_up

        print(f"geometry kernels warmed up in {warm_up():.1f} s")
    done: list[runs.BenchRun] = []
    for model_id in models:
        done += runs.run_model(
            registry,
            model_id,
            device,
            seeds,
            args.faces,
            args.texture_size,
            on_run=lambda run: print(
                f"{run.key}: {'failed' if run.error else 'done'} {run.wall_s:.2f} s", flush=True
            ),
        )
    conditions = {
        "device": device,
        "models": models,
        "seeds": seeds,
        "target_faces": args.faces,
        "texture_size": args.texture_size,
        "kernels_warmed_up": not args.no_warmup,
        "runs": "one per input and seed; a model's first run includes its load",
    }
    doc = report.document(done, conditions)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench.json"
    report.save(doc, path)
    print(report.table(done))
    print(f"wrote {path}")
    plots = report.write_plots(done, args.out)
    print(plots if isinstance(plots, str) else "wrote " + ", ".join(map(str, plots)))
    if old is None:
        return 0
    flags = report.compare(old, doc)
    for flag in flags:
        print(f"REGRESSION {flag}")
    print(f"compared with {args.compare_to}: {len(flags) or 'no'} regression(s)")
    return EXIT_REGRESSION if flags else 0
