"""Colour stills as a film's palette: fine-tune on a few colour frames from the first half of a film,
then colour its second half, against the model it started from.

A restorer often has a handful of colour references for a black-and-white film - production stills,
lobby cards, a colour frame of a later print. ``filmcolor finetune`` takes photos as well as films;
this measures what a few such stills buy. For each colour clip: ``--stills`` frames evenly spaced over
its first half are written as PNGs, the default model is fine-tuned on them alone (the finetune
preset, ``--steps``), and ``filmcolor eval`` scores both models on the clip's second half, which the
fine-tune never saw (made B&W, coloured, compared with the colour original).

    python scripts/stills_demo.py ../shared/data/clips/color/*.mp4 --json docs/results/stills-demo.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2


def write_stills(clip: Path, n: int, folder: Path) -> tuple[list[int], float]:
    """``n`` frames evenly spaced over the first half of ``clip`` as PNGs; returns their indices and
    the time (s) where the second half starts."""
    with av.open(str(clip)) as c:
        stream = c.streams.video[0]
        times = [float(f.pts * f.time_base) for f in c.decode(stream)]
    half = len(times) // 2
    picks = [round(half * (2 * k + 1) / (2 * n)) for k in range(n)]
    folder.mkdir(parents=True, exist_ok=True)
    with av.open(str(clip)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i in picks:
                cv2.imwrite(str(folder / f"still{i:05d}.png"), cv2.cvtColor(frame.to_ndarray(format="rgb24"),
                                                                           cv2.COLOR_RGB2BGR))
            if i >= half:
                break
    return picks, times[half]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="+", type=Path, help="colour films")
    ap.add_argument("--stills", type=int, default=3, help="colour frames taken from each film's first half")
    ap.add_argument("--steps", type=int, default=None, help="fine-tune steps (default: the finetune preset's)")
    ap.add_argument("--base", default="default")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="filmcolor-stills-"))
    os.environ["FILMCOLOR_HOME"] = str(work / "home")  # the user's models folder stays untouched
    from filmcolor.config import RunConfig
    from filmcolor.evaluate import evaluate
    from filmcolor.train import finetune

    rows = []
    for clip in args.clips:
        genre = "stills-" + "".join(ch if ch.isalnum() else "-" for ch in clip.stem)[:40]
        picks, second_half = write_stills(clip, args.stills, work / genre)
        t0 = time.perf_counter()
        model = finetune(genre, [work / genre], args.steps, from_model=args.base, out=str(work / f"run-{genre}"),
                         log=lambda s: None)
        minutes = (time.perf_counter() - t0) / 60
        row = {"clip": clip.name, "still_frames": picks, "second_half_from_s": round(second_half, 3),
               "finetune_minutes": round(minutes, 2)}
        for name, m in (("base", args.base), ("stills", str(model))):
            r = evaluate([clip], RunConfig(model=m, start=second_half))["clips"][0]
            row[name] = {k: round(r["output"][k], 3) for k in ("ciede2000", "psnr", "colourfulness")}
            row[name]["cdc"] = round(r["output"]["cdc"], 6)
            row["grey_ciede2000"], row["reference_colourfulness"] = (round(r["grey"]["ciede2000"], 3),
                                                                     round(r["reference"]["colourfulness"], 2))
            row["frames_scored"] = r["frames"]
        rows.append(row)
        b, s = row["base"], row["stills"]
        print(f"{clip.name}: {row['frames_scored']} frames of the second half; CIEDE2000 {b['ciede2000']:.2f} -> "
              f"{s['ciede2000']:.2f} (grey {row['grey_ciede2000']:.2f}), PSNR {b['psnr']:.2f} -> {s['psnr']:.2f} dB, "
              f"colourfulness {b['colourfulness']:.1f} -> {s['colourfulness']:.1f} "
              f"(reference {row['reference_colourfulness']:.1f}); fine-tune {minutes:.1f} min", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                         "stills_per_clip": args.stills, "steps": args.steps, "clips": rows},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
