"""Score generators side by side on N evenly spaced photos of a folder, relative to the grey input.

    python scripts/score_models.py ../shared/data/photos/val 64 runs/a.safetensors runs/b.safetensors
    python scripts/score_models.py ../shared/data/photos/val 64 default --render-size 128,192,256
    python scripts/score_models.py ../shared/data/photos/val 64 default --render-size 192 --blur 0,1,2,4 --flip-average
    python scripts/score_models.py ../shared/data/photos/val 64 CGAN --interpolate L1 --alphas 0.4,0.5 --recalibrate-bn 150
    python scripts/score_models.py ../shared/data/photos/val 64 default --render-size 192 --saturation 1,1.3,1.6

Prints, per model (and per alpha, render size, blur): CIEDE2000 below grey, colourfulness as a
share of the truth's, PSNR against grey's and the L1 of the normalised a/b. Without
``--render-size`` the network sees each photo at its short side (``train.validate``); with it, as
`filmcolor run` colours a photo (network at that short side, a/b upsampled onto the full-size L).
``--blur`` smooths the render-size a/b (Gaussian sigma, px) before the upsampling; ``--flip-average``
averages the a/b of L and of L mirrored; ``--saturation`` multiplies the a/b (as `run --saturation`); ``--interpolate``/``--alphas`` score network interpolations
(``(1 - alpha) * L1 + alpha * MODEL``, as ``package_default.py``); ``--recalibrate-bn N`` recomputes
BatchNorm statistics on N batches of training crops first (``train.recalibrate_bn``, crop and
scale of the ``train_default`` preset). Used for the training experiments in docs/TRAINING.md;
`scripts/package_default.py --dry-run` scores one model on the whole set.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from filmcolor import color, compose, metrics  # noqa: E402
from filmcolor.data import list_images, load_rgb  # noqa: E402
from filmcolor.inference import Colorizer  # noqa: E402
from filmcolor.train import _evenly, recalibrate_bn, train_config_from_preset, validate  # noqa: E402
from filmcolor.weights import load_generator  # noqa: E402


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def score_as_run(gen: torch.nn.Module, images: list[np.ndarray], render_size: int, blur: float = 0.0,
                 flip_average: bool = False, saturation: float = 1.0) -> dict[str, float]:
    """``train.validate(..., render_size)`` (the steps of ``train.colourise_rgb_as_run``) with the
    experiments' extras: a Gaussian blur of the render-size a/b, the average of the a/b of L and of L
    mirrored, and `run`'s a/b gain (``saturation``)."""
    col = Colorizer(gen, torch.device("cpu"), "fp32", batch_size=1, render_size=render_size, fold_bn=False,
                    saturation=saturation)
    rows = []
    for rgb in images:
        ref = rgb.astype(np.float32) / 255.0
        lab = color.rgb_to_lab_np(ref)
        L = np.ascontiguousarray(lab[..., 0])
        Lr = compose.resize_L(L, *col.render_shape(*L.shape))
        ab = col.predict_ab(Lr[None])[0]
        if flip_average:
            ab = 0.5 * (ab + col.predict_ab(np.ascontiguousarray(Lr[:, ::-1])[None])[0][..., ::-1])
        if blur > 0:
            ab = np.stack([cv2.GaussianBlur(np.ascontiguousarray(c), (0, 0), blur) for c in ab])
        l1 = float(np.abs(color.normalize_ab(compose.resize_ab(ab, *L.shape)) - color.normalize_ab(lab[..., 1:])).mean())
        m = dict(metrics.image_metrics(compose.compose_rgb(L, ab), ref))
        m.update({f"grey_{k}": v for k, v in metrics.image_metrics(compose.grey_rgb(L), ref).items()})
        m.update(l1=l1, ref_colourfulness=metrics.colourfulness(ref))
        rows.append(m)
    col.close()
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", help="folder of colour photos")
    ap.add_argument("count", type=int, help="how many, evenly spaced over the sorted list")
    ap.add_argument("models", nargs="+", help="generator .safetensors files (or model names)")
    ap.add_argument("--short-side", type=int, default=256)
    ap.add_argument("--render-size", default="", help="comma-separated: score as `run` at these sizes")
    ap.add_argument("--blur", default="0", help="comma-separated Gaussian sigmas for the a/b (with --render-size)")
    ap.add_argument("--flip-average", action="store_true", help="average with the mirrored L's a/b (with --render-size)")
    ap.add_argument("--saturation", default="1", help="comma-separated a/b gains, as run --saturation (with --render-size)")
    ap.add_argument("--interpolate", metavar="L1_MODEL", help="score blends of each model with this one")
    ap.add_argument("--alphas", default="1", help="comma-separated weights of MODEL in the blend")
    ap.add_argument("--recalibrate-bn", type=int, default=0, metavar="N", help="BatchNorm statistics on N batches")
    ap.add_argument("--bn-data", default="../shared/data/photos/train", help="photos for --recalibrate-bn")
    args = ap.parse_args()
    images = [load_rgb(p, args.short_side) for p in _evenly(list_images([args.photos]), args.count)]
    bn_images = [load_rgb(p, args.short_side) for p in list_images([args.bn_data])] if args.recalibrate_bn else []
    preset = train_config_from_preset("train_default")
    sizes = [int(v) for v in _floats(args.render_size)]
    other = load_generator(args.interpolate)[0].state_dict() if args.interpolate else None
    for path in args.models:
        gen, _info = load_generator(path)
        own = {k: v.clone() for k, v in gen.state_dict().items()}
        for alpha in (_floats(args.alphas) if other is not None else [1.0]):
            if other is not None:
                gen.load_state_dict({k: ((1 - alpha) * other[k].float() + alpha * v.float()).to(v.dtype)
                                     if v.is_floating_point() else v for k, v in own.items()})
            if args.recalibrate_bn:
                recalibrate_bn(gen, bn_images, args.recalibrate_bn, preset.crop, tuple(preset.scale_range))
            runs = [(rs, b, g) for rs in sizes for b in _floats(args.blur) for g in _floats(args.saturation)]
            for rs, blur, gain in runs or [(None, 0.0, 1.0)]:
                t0 = time.perf_counter()
                if rs and (blur or args.flip_average or gain != 1.0):
                    m = score_as_run(gen, images, rs, blur, args.flip_average, gain)
                else:  # the project's own validation, at the photo's size or as run
                    m = validate(gen, images, torch.device("cpu"), gen.multiple, render_size=rs)
                how = "" if other is None else f" alpha {alpha:g}"
                how += f" render {rs}" if rs else f" short side {args.short_side}"
                how += f" blur {blur:g}" if blur else ""
                how += " flip-average" if rs and args.flip_average else ""
                how += f" saturation {gain:g}" if gain != 1.0 else ""
                how += f" bn {args.recalibrate_bn}" if args.recalibrate_bn else ""
                print(f"{path}{how}: CIEDE {1 - m['ciede2000'] / m['grey_ciede2000']:+.1%} colourf "
                      f"{m['colourfulness'] / m['ref_colourfulness']:.2f}x PSNR {m['psnr'] - m['grey_psnr']:+.2f} "
                      f"L1 {m['l1']:.4f} ({time.perf_counter() - t0:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
