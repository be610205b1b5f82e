"""Training throughput: images/s of the real training loop (``filmcolor.train.train``) and the share
of time it waits for data.

    python scripts/bench_train.py                      # CPU (and CUDA when present), crop 128, batch 16
    python scripts/bench_train.py --crop 256 --batch 64 --device cuda --steps 30 --json

Data are synthetic photos written to a temporary folder unless ``--data`` names real ones. The
first ``--warmup`` steps are not timed. ``wait`` is the time the loop spent blocked on the next
batch (with ``--prefetch 0``: all the time spent in ``sample_batch``); ``make`` is the time spent
preparing batches (``sample_batch``, in the background thread when prefetching), per batch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from filmcolor import train as train_mod  # noqa: E402
from filmcolor.data import BatchStream  # noqa: E402
from filmcolor.train import TrainConfig  # noqa: E402


class TimedStream(BatchStream):
    """The loop's batch stream, timing how long ``next()`` blocks and how long batches take to make."""

    last: "TimedStream | None" = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.wait = self.make = 0.0
        TimedStream.last = self

    def __next__(self):
        t0 = time.perf_counter()
        batch = super().__next__()
        self.wait += time.perf_counter() - t0
        self.make += batch.seconds
        return batch


def synthetic_photos(folder: Path, n: int = 64, side: int = 320) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = cv2.resize(small, (side * 4 // 3, side), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"synth{i:03d}.jpg"), img)
    return folder


def bench(device: str, data: list[str], args: argparse.Namespace) -> dict:
    total = args.warmup + args.steps
    marks: dict[str, float] = {}

    def on_step(step: int, losses: dict) -> None:
        if step == args.warmup:
            s = TimedStream.last
            marks.update(t=time.perf_counter(), wait=s.wait, make=s.make)

    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(data=tuple(data), out=out, steps=total, warmup_steps=0 if args.phase == "gan" else total,
                          batch_size=args.batch, crop=args.crop, ngf=args.ngf, num_downs=args.num_downs, ndf=args.ndf,
                          checkpoint_every=total, val_every=total, device=device, threads=args.threads,
                          prefetch=args.prefetch, data_threads=args.data_threads, precision=args.precision,
                          cache="", max_side=max(256, args.crop), damage=args.damage)
        data_threads = train_mod.data_threads(cfg, torch.device(device))
        train_mod.BatchStream = TimedStream
        try:
            t_end = {}
            train_mod.train(cfg, log=lambda s: None,
                            on_step=lambda s, l: (on_step(s, l), t_end.update(t=time.perf_counter()) if s == total else None))
        finally:
            train_mod.BatchStream = BatchStream
    s = TimedStream.last
    seconds = t_end["t"] - marks["t"]
    images = args.steps * args.batch
    return {"device": device if device != "cuda" else f"cuda ({torch.cuda.get_device_name()})",
            "threads": torch.get_num_threads(), "crop": args.crop, "batch": args.batch, "ngf": args.ngf,
            "num_downs": args.num_downs, "phase": args.phase,
            "precision": args.precision if args.precision != "auto" else ("bf16" if device == "cuda" else "fp32"),
            "prefetch": args.prefetch, "data_threads": data_threads, "images_per_s": round(images / seconds, 1),
            "step_ms": round(1000 * seconds / args.steps, 1),
            "make_ms_per_batch": round(1000 * (s.make - marks["make"]) / args.steps, 1),
            "data_wait_share": round((s.wait - marks["wait"]) / seconds, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CPU, plus CUDA when present")
    p.add_argument("--data", nargs="*", default=None, help="training photos/films (default: synthetic)")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--ngf", type=int, default=24)
    p.add_argument("--num-downs", type=int, default=6)
    p.add_argument("--ndf", type=int, default=32)
    p.add_argument("--phase", choices=("gan", "l1"), default="gan", help="adversarial steps or L1 warm-up steps")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument("--prefetch", type=int, default=2)
    p.add_argument("--data-threads", type=int, default=0, help="threads cutting a batch's crops (0: train's choice)")
    p.add_argument("--damage", type=float, default=0.0)
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.device == "auto" else [args.device]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or [str(synthetic_photos(Path(tmp)))]
        for dev in devices:
            rows.append(bench(dev, data, args))
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    cols = ["device", "threads", "crop", "batch", "ngf", "num_downs", "phase", "precision", "prefetch", "data_threads",
            "images_per_s", "step_ms", "make_ms_per_batch", "data_wait_share"]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths)))


if __name__ == "__main__":
    main()
