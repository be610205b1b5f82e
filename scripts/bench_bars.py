"""Black bars: how the network's colours change when a picture is shown inside them, and what
colouring only the picture costs or saves end to end.

Quality: colour photos and frames of colour films are made B&W, framed - bare, pillarboxed into 16:9,
letterboxed as a 2.39:1 picture in a 4:3 frame, and in a print's white mount - and coloured with
the bars or mount shown to the network (``--bars off``) and without them (``auto``; the mount, which
``auto`` does not find, with its area named: ``--bars WxH+X+Y``); CIEDE2000 against the true colours
is scored on the picture only, and the chroma the mount's margin gets (C*ab) beside it. Speed:
``filmcolor run`` on a film with bars, ``auto`` against ``off``, alternating, in one process.

    python scripts/bench_bars.py ../shared/data/photos/val ../shared/data/clips/color/*.mp4 \\
        --film samples/steamboat_willie_1928.mp4 --json docs/results/bars.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from filmcolor import bars, color, metrics
from filmcolor.config import RunConfig
from filmcolor.inference import Colorizer
from filmcolor.pipeline import colorize_file, colorize_rgb


def references(paths: list[Path], photo_every: int, frame_every: int):
    """(name, RGB float) of every ``photo_every``-th photo in folders and every ``frame_every``-th frame of films."""
    for p in paths:
        if p.is_dir():
            for f in sorted(p.iterdir())[::photo_every]:
                img = cv2.imread(str(f))
                if img is not None:
                    yield "photos", cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
        else:
            with av.open(str(p)) as c:
                for i, frame in enumerate(c.decode(video=0)):
                    if i % frame_every == 0:
                        yield "film frames", frame.to_ndarray(format="rgb24").astype(np.float32) / 255


def framed(L: np.ndarray, lab: np.ndarray, kind: str):
    """(L* of the framed picture, its picture Area, the reference Lab of the picture)."""
    h, w = L.shape
    if kind == "mount":  # a print's white margin, 8% of the short side all round (L* 94, paper grain)
        m = round(0.08 * min(h, w)) // 2 * 2
        frame = 94 + np.random.default_rng(h * w).normal(0, 0.7, (h + 2 * m, w + 2 * m)).astype(np.float32)
        frame[m:m + h, m:m + w] = L
        return frame, bars.Area(m, m, h, w, frame.shape), lab
    if kind == "pillarbox":  # into 16:9, bars left and right
        W = max(w, round(h * 16 / 9))
        left = (W - w) // 2 // 2 * 2
        frame = np.zeros((h, W), np.float32)
        frame[:, left:left + w] = L
        return frame, bars.Area(0, left, h, w, (h, W)), lab
    ph = round(w / 2.39) // 2 * 2  # a 2.39:1 picture letterboxed in 4:3
    pic = cv2.resize(lab, (w, ph), interpolation=cv2.INTER_AREA)
    H = round(w * 3 / 4)
    top = (H - ph) // 2 // 2 * 2
    frame = np.zeros((H, w), np.float32)
    frame[top:top + ph] = pic[..., 0]
    return frame, bars.Area(top, 0, ph, w, (H, w)), pic


def quality(args, colorizer: Colorizer) -> dict:
    scores: dict = {}
    for group, rgb in references(args.references, args.photo_every, args.frame_every):
        lab = color.rgb_to_lab_np(rgb)
        row = scores.setdefault(group, {"bare": [], "grey": []})
        row["bare"].append(metrics.ciede2000(color.rgb_to_lab_np(colorize_rgb(lab[..., 0], colorizer)), lab))
        grey = lab.copy()
        grey[..., 1:] = 0
        row["grey"].append(metrics.ciede2000(grey, lab))
        for kind in ("pillarbox", "letterbox", "mount"):
            frame, area, ref = framed(lab[..., 0], lab, kind)
            found = bars.find_picture([frame])  # a white mount is not found: auto is off there
            for mode, used in (("off", None), ("auto", found)) + ((("named", area),) if kind == "mount" else ()):
                whole = color.rgb_to_lab_np(colorize_rgb(frame, colorizer, used))
                row.setdefault(f"{kind} {mode}", []).append(metrics.ciede2000(whole[area.slices()], ref))
                if kind == "mount":  # how much colour the margin gets (C*ab; 0 = stays white)
                    bottom = area.top + area.height
                    margin = np.concatenate([whole[:area.top].reshape(-1, 3), whole[bottom:].reshape(-1, 3)])
                    chroma = float(np.hypot(margin[:, 1], margin[:, 2]).mean())
                    row.setdefault(f"mount {mode} margin chroma", []).append(chroma)
    return {g: {k: float(np.mean(v)) for k, v in row.items()} | {"n": len(row["bare"])} for g, row in scores.items()}


def speed(film: Path, runs: int) -> dict:
    times: dict[str, list[float]] = {"auto": [], "off": []}
    area = None
    with tempfile.TemporaryDirectory() as tmp:
        colorizer = Colorizer.from_config(RunConfig())
        for k in range(runs):
            for mode in ("auto", "off") if k % 2 == 0 else ("off", "auto"):
                r = colorize_file(film, Path(tmp) / f"{mode}{k}.mp4", RunConfig(bars=mode), colorizer=colorizer)
                times[mode].append(r.seconds)
                if mode == "auto":
                    area = r.area
    med = {m: statistics.median(t) for m, t in times.items()}
    return {"film": str(film), "runs": runs, "median_s": med, "off_over_auto": med["off"] / med["auto"],
            "picture": str(area) if area else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("references", nargs="*", type=Path, help="folders of colour photos and colour films")
    ap.add_argument("--photo-every", type=int, default=7)
    ap.add_argument("--frame-every", type=int, default=25)
    ap.add_argument("--film", type=Path, default=None, help="a film with black bars, for the speed comparison")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    out: dict = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.references:
        out["ciede2000"] = quality(args, Colorizer.from_config(RunConfig()))
        for group, row in out["ciede2000"].items():
            print(f"{group} (n={row['n']}): grey {row['grey']:.2f}, bare {row['bare']:.2f}; "
                  f"pillarbox off {row['pillarbox off']:.2f} / auto {row['pillarbox auto']:.2f}; "
                  f"letterbox off {row['letterbox off']:.2f} / auto {row['letterbox auto']:.2f}; "
                  f"white mount off {row['mount off']:.2f} / named {row['mount named']:.2f} (margin chroma "
                  f"{row['mount off margin chroma']:.2f} / {row['mount named margin chroma']:.2f})")
    if args.film:
        out["speed"] = s = speed(args.film, args.runs)
        print(f"{args.film.name} ({s['picture']}): median {s['median_s']['auto']:.2f} s with bars auto, "
              f"{s['median_s']['off']:.2f} s off ({s['off_over_auto']:.2f}x), {args.runs} runs each")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
