"""Score temporal smoothing modes on colour reference clips and check issue 4's criteria.

Runs :func:`filmcolor.evaluate.evaluate` over the clips once per smoothing mode (the network's
predictions are computed once and reused: every mode sees the same frames in the same batches) and
prints a Markdown table: per clip and the mean, one row per mode plus the grey input and the
reference, then the criteria for each smoothing mode against ``off``:

- RGB warp error <= 1.1 x the grey input's (colour adds no flicker)
- RGB warp error and a/b ("chroma") warp error: % below ``off`` (the issue asks >= 30%; on RGB the
  luminance/flow errors shared by every version bound what any smoother can show, see docs/TEMPORAL.md)
- CDC <= the reference's
- ΔE00 no worse than ``off`` by more than 0.3

Example (the final eval)::

    python scripts/eval_clips.py ../shared/data/clips/color/* --model default --max-frames 300 \
        --image-every 2 -o docs/results/eval-clips.md --json docs/results/eval-clips.json

Exit code 0 when ``flow`` meets every criterion on the mean, 1 otherwise (the table is written
either way).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from filmcolor.config import SMOOTHERS, run_config_from_preset
from filmcolor.evaluate import evaluate, to_json

RATIO_VS_GREY = 1.1
BELOW_OFF = 0.30
DE_SLACK = 0.3


class CachedColorizer:
    """Wraps a colorizer; identical L batches (same bytes) return the stored prediction."""

    def __init__(self, inner) -> None:
        self.inner, self.cache, self.calls = inner, {}, 0
        self.dtype = getattr(inner, "dtype", None)  # the precision it runs at, for the settings line

    def render_shape(self, h: int, w: int) -> tuple[int, int]:
        return self.inner.render_shape(h, w)

    def predict_ab(self, L: np.ndarray) -> np.ndarray:
        L = np.ascontiguousarray(L, dtype=np.float32)
        key = (L.shape, hashlib.blake2b(L.tobytes(), digest_size=16).hexdigest())
        if key not in self.cache:
            self.calls += 1
            self.cache[key] = np.asarray(self.inner.predict_ab(L), dtype=np.float32)
        return self.cache[key].copy()


def _f(x: float, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _pct_below(x: float, off: float) -> float:
    return math.nan if not off or math.isnan(off) or math.isnan(x) else 100.0 * (1.0 - x / off)


def checks(row: dict[str, dict], mode: str) -> dict[str, tuple[float, bool]]:
    """Criteria for ``mode`` in one row (``{mode: version metrics, "grey": ..., "reference": ...}``)."""
    m, off, grey, ref = row[mode], row["off"], row["grey"], row["reference"]
    ratio = m["warp_error"] / grey["warp_error"] if grey["warp_error"] else math.nan
    rgb_below = _pct_below(m["warp_error"], off["warp_error"])
    ab_below = _pct_below(m["warp_error_ab"], off["warp_error_ab"])
    dde = m["ciede2000"] - off["ciede2000"]
    return {
        "warp/grey": (ratio, ratio <= RATIO_VS_GREY),
        "RGB % below off": (rgb_below, rgb_below >= 100 * BELOW_OFF),
        "ab % below off": (ab_below, ab_below >= 100 * BELOW_OFF),
        "CDC - ref": (m["cdc"] - ref["cdc"], m["cdc"] <= ref["cdc"]),
        "ΔE00 - off": (dde, dde <= DE_SLACK),
    }


_CRIT_FMT = {"warp/grey": "{:.2f}", "RGB % below off": "{:.0f}%", "ab % below off": "{:.0f}%",
             "CDC - ref": "{:+.4f}", "ΔE00 - off": "{:+.2f}"}


def markdown(rows: list[tuple[str, int, dict]], modes: list[str], settings: dict) -> str:
    out = ["| clip | frames | version | ΔE00 | PSNR dB | colourf. | CDC | warp err (RGB) | warp err (ab) |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for name, frames, row in rows:
        for i, v in enumerate(modes + ["grey", "reference"]):
            m = row[v]
            label = v if v in ("grey", "reference") else f"output `{v}`"
            out.append(f"| {name if i == 0 else ''} | {frames if i == 0 else ''} | {label} | "
                       f"{_f(m['ciede2000'], '{:.2f}')} | {_f(m['psnr'], '{:.2f}') if math.isfinite(m['psnr']) else 'inf'} | "
                       f"{_f(m['colourfulness'], '{:.1f}')} | {_f(m['cdc'], '{:.4f}')} | "
                       f"{_f(m['warp_error'], '{:.5f}')} | {_f(m['warp_error_ab'], '{:.3f}')} |")
    out += ["", "Criteria (issue 4) for each smoothing mode against `off`; ✅ met, ❌ not met "
            f"(warp/grey <= {RATIO_VS_GREY}, % below off >= {100 * BELOW_OFF:.0f}, CDC <= reference, "
            f"ΔE00 - off <= {DE_SLACK}):", ""]
    crit = list(checks(rows[0][2], modes[-1])) if modes[-1] != "off" else []
    out += ["| clip | mode | " + " | ".join(crit) + " |", "|---|---|" + "---:|" * len(crit)]
    for name, _frames, row in rows:
        for v in modes:
            if v == "off":
                continue
            cells = [f"{_f(x, _CRIT_FMT[k])} {'✅' if ok else '❌'}" for k, (x, ok) in checks(row, v).items()]
            out.append(f"| {name} | `{v}` | " + " | ".join(cells) + " |")
    out += ["", "Warp errors: squared error between a frame and its flow-warped predecessor, occlusion-masked, "
            "flow from the reference's L*; RGB in [0, 1]², ab in squared a/b units (the grey input's ab warp "
            "error is 0 by definition).",
            "", "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items())]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="+", type=Path, help="colour reference clips")
    ap.add_argument("--model", default=None, help="model name or .safetensors path (default: the preset's)")
    ap.add_argument("--preset", default="run", help="settings preset from configs/")
    ap.add_argument("--modes", default="off,ema,flow", help="comma-separated smoothing modes; off is always run")
    ap.add_argument("--strength", type=float, default=None, help="smooth_strength (default: the preset's)")
    ap.add_argument("--lookahead", type=int, default=None, help="flow look-ahead (default: temporal.smooth's)")
    ap.add_argument("--flow-scale", type=float, default=None,
                    help="flow size / render size (default: temporal.smooth's)")
    ap.add_argument("--dis-preset", default=None, choices=("ultrafast", "fast", "medium"),
                    help="DIS preset of the flow smoother (default: temporal.smooth's)")
    ap.add_argument("--max-frames", type=int, default=None, help="at most this many frames per clip")
    ap.add_argument("--image-every", type=int, default=1, help="image metrics on every n-th frame (speed)")
    ap.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"))
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--render-size", type=int, default=None, help="network short side (default: the preset's)")
    ap.add_argument("-o", "--output", type=Path, default=None, help="also write the Markdown table here")
    ap.add_argument("--json", type=Path, default=None, help="also write every mode's full result here")
    args = ap.parse_args(argv)

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in SMOOTHERS]
    if bad:
        ap.error(f"unknown mode(s) {', '.join(bad)}; known: {', '.join(SMOOTHERS)}")
    modes = ["off"] + [m for m in modes if m != "off"]
    config = run_config_from_preset(args.preset, model=args.model, smooth_strength=args.strength,
                                    device=args.device, batch_size=args.batch_size, render_size=args.render_size)
    from filmcolor.inference import Colorizer

    colorizer = CachedColorizer(Colorizer.from_config(config))
    results = {}
    for mode in modes:
        t0 = time.perf_counter()
        results[mode] = evaluate(args.clips, config.with_overrides(smooth=mode), max_frames=args.max_frames,
                                 colorizer=colorizer, image_every=args.image_every, lookahead=args.lookahead,
                                 flow_scale=args.flow_scale, dis_preset=args.dis_preset)
        print(f"[{mode}] {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    names = [c["path"] for c in results["off"]["clips"]]
    rows = []
    for i, path in enumerate(names + (["mean"] if len(names) > 1 else [])):
        src = (lambda r: r["mean"]) if path == "mean" else (lambda r, i=i: r["clips"][i])
        row = {m: src(results[m])["output"] for m in modes}
        row["grey"], row["reference"] = src(results["off"])["grey"], src(results["off"])["reference"]
        frames = "" if path == "mean" else results["off"]["clips"][i]["frames"]
        rows.append(("**mean**" if path == "mean" else Path(path).name, frames, row))
    settings = {k: v for k, v in results["off"]["settings"].items() if k != "smooth"}
    table = markdown(rows, modes, settings)
    print(table)
    if args.output:
        args.output.write_text(table + "\n")
    if args.json:
        args.json.write_text(json.dumps({m: json.loads(to_json(r)) for m, r in results.items()}, indent=2))
    if "flow" not in modes:
        return 0
    return 0 if all(ok for _x, ok in checks(rows[-1][2], "flow").values()) else 1


if __name__ == "__main__":
    sys.exit(main())
