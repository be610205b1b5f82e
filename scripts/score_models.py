"""Score generators side by side on N evenly spaced photos of a folder (the training loop's
validation: ``train.validate``, network at the photo's short side), relative to the grey input.

    python scripts/score_models.py ../shared/data/photos/val 64 runs/a.safetensors runs/b.safetensors

Prints, per model: CIEDE2000 below grey, colourfulness as a share of the truth's, PSNR against
grey's and the L1 of the normalised a/b. Used for the training experiments in docs/TRAINING.md;
`scripts/package_default.py --dry-run` scores one model on the whole set.
"""

from __future__ import annotations

import argparse
import time

import torch

from filmcolor.data import list_images, load_rgb
from filmcolor.train import _evenly, validate
from filmcolor.weights import load_generator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", help="folder of colour photos")
    ap.add_argument("count", type=int, help="how many, evenly spaced over the sorted list")
    ap.add_argument("models", nargs="+", help="generator .safetensors files (or model names)")
    ap.add_argument("--short-side", type=int, default=256)
    args = ap.parse_args()
    images = [load_rgb(p, args.short_side) for p in _evenly(list_images([args.photos]), args.count)]
    for path in args.models:
        t0 = time.perf_counter()
        gen, _info = load_generator(path)
        m = validate(gen, images, torch.device("cpu"), gen.multiple)
        print(f"{path}: CIEDE {1 - m['ciede2000'] / m['grey_ciede2000']:+.1%} colourf "
              f"{m['colourfulness'] / m['ref_colourfulness']:.2f}x PSNR {m['psnr'] - m['grey_psnr']:+.2f} "
              f"L1 {m['l1']:.4f} ({time.perf_counter() - t0:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
