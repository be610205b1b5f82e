"""Validate a trained generator on a photo folder and package it as the default model.

    python scripts/package_default.py runs/default/default.safetensors \
        --val ../shared/data/photos/val --out filmcolor/models/default.safetensors

Writes the fp16 safetensors with its card (training card + validation metrics on every image of
``--val`` next to the grey baseline) and a human-readable ``default.md`` beside it. ``--dry-run``
only prints the metrics. Validation images are scaled to ``--short-side`` (the scale the model was
trained at) before colouring.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from filmcolor.data import list_images, load_rgb
from filmcolor.train import validate, write_grid
from filmcolor.weights import load_generator, save_generator

TARGETS = "CIEDE2000 >= 15% below grey; colourfulness >= 0.5x ground truth; PSNR >= grey"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--val", default="../shared/data/photos/val")
    ap.add_argument("--out", default="filmcolor/models/default.safetensors")
    ap.add_argument("--short-side", type=int, default=256)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()

    gen, info = load_generator(args.model)
    paths = list_images([args.val])
    images = [load_rgb(p, args.short_side) for p in paths]
    t0 = time.perf_counter()
    m = validate(gen, images, torch.device("cpu"), gen.multiple)
    summary = {
        "images": len(images), "short_side": args.short_side, **{k: round(v, 4) for k, v in m.items()},
        "ciede2000_vs_grey": round(1 - m["ciede2000"] / m["grey_ciede2000"], 4),
        "colourfulness_vs_truth": round(m["colourfulness"] / m["ref_colourfulness"], 4),
        "psnr_minus_grey": round(m["psnr"] - m["grey_psnr"], 4),
    }
    print(json.dumps(summary, indent=1))
    print(f"targets: {TARGETS}; validated in {time.perf_counter() - t0:.0f}s")
    if args.dry_run:
        return
    card = dict(info.card)
    card["validation"] = {"set": str(args.val), **summary}
    out = save_generator(gen, args.out, info.arch, info.arch_args, card)
    write_grid(gen, images[:: max(1, len(images) // 6)][:6], torch.device("cpu"), gen.multiple,
               Path("docs") / "default_model_grid.png")
    lines = [f"# Model card: {out.stem}", "", f"- architecture: {info.arch} {info.arch_args}",
             f"- file: {out.name}, fp16 safetensors, {out.stat().st_size / 1e6:.1f} MB"]
    lines += [f"- {k}: {v}" for k, v in card.items() if k != "validation"]
    lines += ["", f"## Validation on {args.val} ({len(images)} images, short side {args.short_side})", "",
              "| metric | model | grey input |", "|---|---|---|"]
    for k in ("psnr", "ssim", "ciede2000", "colourfulness"):
        lines.append(f"| {k} | {m[k]:.3f} | {m['grey_' + k]:.3f} |")
    lines += [f"| colourfulness of the ground truth | {m['ref_colourfulness']:.3f} | |", "",
              f"Targets ({TARGETS}): CIEDE2000 {summary['ciede2000_vs_grey']:+.1%} vs grey, colourfulness "
              f"{summary['colourfulness_vs_truth']:.2f}x truth, PSNR {summary['psnr_minus_grey']:+.2f} dB vs grey.",
              "", "Regenerate: `python scripts/package_default.py runs/default/default.safetensors`."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
