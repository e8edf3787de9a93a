"""Benchmark: three device steps of the GPU geometry path, the plain torch way against ours.

Each pair computes the same answer (checked, reported beside the time) on data of the bake's
size for an 800k-triangle source and 2048 px maps:

- read-back: a 19 MB device tensor (the cleaned mesh's faces) to a numpy array,
  ``tensor.cpu().numpy()`` against ``torch_host.to_numpy`` (page-locked memory). The plain copy
  lands in freshly allocated memory each time, as in a job;
- row gathers: ``table[index]`` of 8M rows from 3M against ``torch_gather.rows``, for row
  shapes the bake gathers (float64 (3, 2), (2,), (4,); float32 (4,));
- dilation: the bake's 16 rounds over 7 int16 planes of 2048 px, the compiled torch round
  against the Triton kernel (``triton_dilate``), where Triton is.

Both sides warmed up, ``--repeats`` timed calls each (median, min, max), synchronised.

    python benchmarks/device_steps.py --device cuda --out /tmp/device_steps.json
    python benchmarks/device_steps.py --device cpu --small   # the script itself, on a CPU
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from backend.geometry import torch_dilate, torch_gather, torch_host, triton_dilate  # noqa: E402
from benchmarks.common import spread, synchronised_now  # noqa: E402


def timed(call: Callable[[], Any], device: torch.device, repeats: int) -> tuple[Any, dict]:
    """One warm-up call, then ``repeats`` synchronised ones: (last answer, spread in ms)."""
    answer = call()
    samples = []
    for _ in range(repeats):
        started = synchronised_now(device)
        answer = call()
        samples.append(synchronised_now(device) - started)
    return answer, {k: (v * 1e3 if k != "n" else v) for k, v in spread(samples).items()}


def read_back(device: torch.device, repeats: int, mb: int) -> dict:
    data = torch.randint(0, 2**62, (mb * 2**20 // 8,), device=device)
    plain, plain_t = timed(lambda: data.cpu().numpy(), device, repeats)
    ours, ours_t = timed(lambda: torch_host.to_numpy(data), device, repeats)
    return {"bytes": data.nbytes, "plain_ms": plain_t, "ours_ms": ours_t,
            "same": bool(np.array_equal(plain, ours))}  # fmt: skip


def gathers(device: torch.device, repeats: int, rows: int, picks: int) -> list[dict]:
    generator = torch.Generator(device=device).manual_seed(0)
    index = torch.randint(0, rows, (picks,), device=device, generator=generator)
    out = []
    for shape, dtype in (((3, 2), torch.float64), ((2,), torch.float64), ((4,), torch.float64),
                         ((4,), torch.float32)):  # fmt: skip
        table = torch.randn((rows, *shape), device=device, generator=generator).to(dtype)
        plain, plain_t = timed(lambda t=table: t[index], device, repeats)
        ours, ours_t = timed(lambda t=table: torch_gather.rows(t, index), device, repeats)
        name = f"{tuple(shape)} {str(dtype).replace('torch.', '')}"
        same = bool(torch.equal(plain, ours))
        out.append({"rows": name, "picks": picks, "plain_ms": plain_t, "ours_ms": ours_t,
                    "same": same})  # fmt: skip
    return out


def dilation(device: torch.device, repeats: int, size: int) -> dict | None:
    if device.type != "cuda" or not triton_dilate.available():
        return None
    generator = torch.Generator(device=device).manual_seed(1)
    mask = (torch.rand((1, size, size), device=device, generator=generator) < 0.6).short()
    image = torch.randint(0, 256, (7, size, size), device=device, generator=generator,
                          dtype=torch.int16) * mask  # fmt: skip
    compiled = torch.compile(torch_dilate._round, dynamic=True)

    def rounds(grow: Callable) -> tuple:
        state = (image, mask)
        for _ in range(16):
            state = grow(*state)
        return state

    plain, plain_t = timed(lambda: rounds(compiled), device, repeats)
    ours, ours_t = timed(lambda: rounds(triton_dilate.dilation_round), device, repeats)
    same = all(torch.equal(a, b) for a, b in zip(plain, ours, strict=True))
    return {"texels": size * size, "planes": 8, "rounds": 16, "plain_ms": plain_t,
            "ours_ms": ours_t, "same": same}  # fmt: skip


def _cell(row: dict) -> str:
    return f"{row['median']:.2f} ({row['min']:.2f}-{row['max']:.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--small", action="store_true", help="small sizes (a CPU check)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows, picks, mb, size = (3_000_000, 8_000_000, 19, 2048) if not args.small else (
        3000, 8000, 1, 64)  # fmt: skip
    repeats = max(args.repeats, 5)  # the comparison rules' least
    report = {
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "repeats": repeats,
        "read_back": read_back(device, repeats, mb),
        "gathers": gathers(device, repeats, rows, picks),
        "dilation": dilation(device, repeats, size),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }  # fmt: skip
    print("| step | plain torch, ms | ours, ms | same answer |")
    print("| --- | --- | --- | --- |")
    back = report["read_back"]
    print(f"| read-back {back['bytes'] / 2**20:.0f} MB | {_cell(back['plain_ms'])} | "
          f"{_cell(back['ours_ms'])} | {back['same']} |")  # fmt: skip
    for row in report["gathers"]:
        print(f"| gather {picks} rows {row['rows']} | {_cell(row['plain_ms'])} | "
              f"{_cell(row['ours_ms'])} | {row['same']} |")  # fmt: skip
    if report["dilation"]:
        row = report["dilation"]
        print(f"| dilation, 16 rounds, 8 planes of {size} px | {_cell(row['plain_ms'])} | "
              f"{_cell(row['ours_ms'])} | {row['same']} |")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
