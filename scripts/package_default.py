"""Validate a trained generator on a photo folder and package it as the default model.

    python scripts/package_default.py runs/default/default.safetensors \
        --val ../shared/data/photos/val --out filmcolor/models/default.safetensors

Writes the fp16 safetensors with its card (training card + validation metrics on every image of
``--val`` next to the grey baseline) and a human-readable ``default.md`` beside it. ``--dry-run``
only prints the metrics. Validation images are scaled to ``--short-side`` (the scale the model was
trained at) before colouring.

``--interpolate OTHER --alpha A`` packages the network interpolation of Wang et al. (ESRGAN, 2018,
section 3.4): every weight is ``(1 - A) * OTHER + A * MODEL``, with OTHER the same run's generator at
the end of its L1-only warm-up and MODEL the adversarially trained one. A trades the L1 model's
accuracy (CIEDE2000, PSNR) for the cGAN's colourfulness without retraining. ``--calibrate DIR
--alphas ...`` prints the metrics of each A on DIR (use training photos, never the validation set,
to choose A), each scored both ways (below).

``--recalibrate-bn N`` recomputes the BatchNorm running statistics of the packaged weights (after
any interpolation) on N batches of random crops of ``--bn-data`` (training photos; crop and scale
of the ``train_default`` preset): the EMA and the blend carry statistics measured on other weights
(``train.recalibrate_bn``). With ``--calibrate`` it is applied to every A.

The metrics are computed twice: with the network seeing each photo at ``--short-side`` (the
training loop's validation), and the way `filmcolor run` colours a photo (its ``render_size``, the run
preset's by default: the network sees L at that short side and its a/b are upsampled onto the
full-size L). Both go in the card.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from filmcolor.config import run_config_from_preset
from filmcolor.data import list_images, load_rgb
from filmcolor.train import _evenly, recalibrate_bn, train_config_from_preset, validate, write_grid
from filmcolor.weights import load_generator, save_generator

TARGETS = "CIEDE2000 >= 15% below grey; colourfulness >= 0.5x ground truth; PSNR >= grey"


def interpolate(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """(1 - alpha) * a + alpha * b for floating-point tensors; integer buffers are taken from b."""
    return {k: torch.lerp(a[k], b[k], alpha) if b[k].is_floating_point() else b[k] for k in b}


def _summary(m: dict[str, float], **about: int) -> dict[str, float]:
    return {**about, **{k: round(v, 4) for k, v in m.items()},
            "ciede2000_vs_grey": round(1 - m["ciede2000"] / m["grey_ciede2000"], 4),
            "colourfulness_vs_truth": round(m["colourfulness"] / m["ref_colourfulness"], 4),
            "psnr_minus_grey": round(m["psnr"] - m["grey_psnr"], 4)}


def _table(m: dict[str, float], summary: dict[str, float]) -> list[str]:
    lines = ["| metric | model | grey input |", "|---|---|---|"]
    for k in ("psnr", "ssim", "ciede2000", "colourfulness"):
        lines.append(f"| {k} | {m[k]:.3f} | {m['grey_' + k]:.3f} |")
    return lines + [f"| colourfulness of the ground truth | {m['ref_colourfulness']:.3f} | |", "",
                    f"Targets ({TARGETS}): CIEDE2000 {summary['ciede2000_vs_grey']:+.1%} below grey, colourfulness "
                    f"{summary['colourfulness_vs_truth']:.2f}x truth, "
                    f"PSNR {summary['psnr_minus_grey']:+.2f} dB vs grey."]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--val", default="../shared/data/photos/val")
    ap.add_argument("--out", default="filmcolor/models/default.safetensors")
    ap.add_argument("--short-side", type=int, default=256)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--interpolate", metavar="L1_MODEL", help="blend with this generator (same architecture)")
    ap.add_argument("--alpha", type=float, default=1.0, help="weight of MODEL in the blend (1 = MODEL alone)")
    ap.add_argument("--calibrate", metavar="DIR", help="print metrics for each --alphas value on DIR and stop")
    ap.add_argument("--alphas", default="0,0.25,0.4,0.5,0.6,0.75,1")
    ap.add_argument("--calibrate-images", type=int, default=64)
    ap.add_argument("--note", help="a line for the card (e.g. why it was trained where it was)")
    ap.add_argument("--render-size", type=int, default=None,
                    help="score also as `filmcolor run` does at this render size [default: the run preset's]")
    ap.add_argument("--recalibrate-bn", type=int, default=0, metavar="N",
                    help="recompute BatchNorm statistics on N batches of training crops [default: 0 = keep]")
    ap.add_argument("--bn-data", default="../shared/data/photos/train", help="photos for --recalibrate-bn")
    args = ap.parse_args()

    render_size = args.render_size or run_config_from_preset().render_size
    gen, info = load_generator(args.model)
    bn_images: list = []
    if args.recalibrate_bn:
        bn_images = [load_rgb(p, args.short_side) for p in list_images([args.bn_data])]
    preset = train_config_from_preset("train_default")

    def recalibrated() -> None:
        if args.recalibrate_bn:
            recalibrate_bn(gen, bn_images, args.recalibrate_bn, preset.crop, tuple(preset.scale_range))
    if args.interpolate:
        other, other_info = load_generator(args.interpolate)
        if other_info.arch_args != info.arch_args:
            raise SystemExit(f"{args.interpolate}: architecture {other_info.arch_args} differs from {info.arch_args}")
        base_sd, gan_sd = other.state_dict(), {k: v.clone() for k, v in gen.state_dict().items()}
        if args.calibrate:
            cal = [load_rgb(p, args.short_side) for p in _evenly(list_images([args.calibrate]), args.calibrate_images)]
            for a in (float(v) for v in args.alphas.split(",")):
                gen.load_state_dict(interpolate(base_sd, gan_sd, a))
                recalibrated()
                for how, rs in (("short side", None), (f"as run at {render_size}", render_size)):
                    m = validate(gen, cal, torch.device("cpu"), gen.multiple, render_size=rs)
                    print(f"alpha {a:.2f} ({how}): CIEDE2000 {1 - m['ciede2000'] / m['grey_ciede2000']:+.1%} below "
                          f"grey, colourfulness {m['colourfulness'] / m['ref_colourfulness']:.2f}x truth, "
                          f"PSNR {m['psnr'] - m['grey_psnr']:+.2f} dB vs grey, L1 {m['l1']:.4f}", flush=True)
            return
        gen.load_state_dict(interpolate(base_sd, gan_sd, args.alpha))
        info.card["network_interpolation"] = (
            f"(1 - {args.alpha:g}) x {Path(args.interpolate).name} (steps {other_info.card.get('steps')}, L1 only) "
            f"+ {args.alpha:g} x {Path(args.model).name} (steps {info.card.get('steps')}, cGAN); ESRGAN section 3.4")
    recalibrated()
    if args.recalibrate_bn:
        info.card["bn_recalibration"] = (f"BatchNorm statistics recomputed on {args.recalibrate_bn} batches of "
                                         f"{preset.crop} px crops of {args.bn_data}")
    paths = list_images([args.val])
    images = [load_rgb(p, args.short_side) for p in paths]
    t0 = time.perf_counter()
    m = validate(gen, images, torch.device("cpu"), gen.multiple)
    summary = _summary(m, images=len(images), short_side=args.short_side)
    m_run = validate(gen, images, torch.device("cpu"), gen.multiple, render_size=render_size)
    summary_run = _summary(m_run, images=len(images), short_side=args.short_side, render_size=render_size)
    print(json.dumps({"network_at_short_side": summary, "as_run": summary_run}, indent=1))
    print(f"targets: {TARGETS}; validated in {time.perf_counter() - t0:.0f}s")
    if args.dry_run:
        return
    card = dict(info.card)
    if args.note:
        card["note"] = args.note
    card["validation"] = {"set": str(args.val), **summary}
    card["validation_as_run"] = {"set": str(args.val), **summary_run}
    out = save_generator(gen, args.out, info.arch, info.arch_args, card)
    # the packaged model's grid is the one the docs show; any other output gets its own beside it
    root = Path(__file__).resolve().parents[1]
    packaged = Path(args.out).resolve() == root / "filmcolor" / "models" / "default.safetensors"
    grid = root / "docs" / "default_model_grid.png" if packaged else out.with_name(f"{out.stem}_grid.png")
    write_grid(gen, images[:: max(1, len(images) // 6)][:6], torch.device("cpu"), gen.multiple, grid)
    lines = [f"# Model card: {out.stem}", "", f"- architecture: {info.arch} {info.arch_args}",
             f"- file: {out.name}, fp16 safetensors, {out.stat().st_size / 1e6:.1f} MB"]
    lines += [f"- {k}: {v}" for k, v in card.items() if not k.startswith("validation")]
    lines += ["", f"## Validation on {args.val} ({len(images)} images, short side {args.short_side})", "",
              "The network sees each photo at that size (the training loop's validation):", ""]
    lines += _table(m, summary)
    lines += ["", f"As `filmcolor run` colours a photo: the network sees L at short side {render_size} and its "
              "a/b are upsampled onto the full-size L:", ""]
    lines += _table(m_run, summary_run)
    lines += ["", f"Made with: `python scripts/package_default.py {shlex.join(sys.argv[1:])}`."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
