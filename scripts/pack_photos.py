"""Pack training photos into a size budget, for a lent GPU machine whose working tree is capped.

    python scripts/pack_photos.py ../shared/data/photos/train .gpu-data/train --budget-mb 52 --quality 72
    python scripts/pack_photos.py ../shared/data/photos/train .gpu-data/train --budget-mb 52 --holdout 150
    python scripts/pack_photos.py ../shared/data/photos/train /tmp/pack/train --budget-mb 52 --split-links /tmp/split

A seeded random subset, in a random order, re-encoded as JPEG at ``--quality`` (at the stored size:
nothing is resized, so crops see objects at the scale the full set shows them) until the next
photo would pass ``--budget-mb``. ``--holdout N`` first puts N photos of that order into
``OUT/../holdout`` (inside the budget): training photos the run never sees, to watch it overfit. ``--split-links DIR`` also writes
``DIR/seen`` and ``DIR/unseen``: links to the originals of the photos packed for training and of
the rest, to score a model trained on the pack on both (does it memorise its photos?). Prints how many photos were kept and their mean a/b error against
the originals (8-bit Lab units), so the cost of the re-encoding is on record. The originals are
never touched; the output folder is emptied of ``*.jpg`` first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from filmcolor.data import list_images  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--budget-mb", type=float, default=52.0, help="total size of the packed JPEGs (MB = 1e6 bytes)")
    p.add_argument("--quality", type=int, default=72, help="JPEG quality of the re-encoded photos")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", type=int, default=0, help="photos for OUT/../holdout, taken first")
    p.add_argument("--split-links", type=Path, default=None, metavar="DIR",
                   help="links to the originals: DIR/seen (packed for training), DIR/unseen (the rest)")
    args = p.parse_args()
    files = list_images([args.source])
    order = np.random.default_rng(args.seed).permutation(len(files))
    holdout = args.out.parent / "holdout"
    for folder in (args.out, holdout) if args.holdout else (args.out,):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.jpg"):
            old.unlink()
    budget, used, kept, held, ab_err = args.budget_mb * 1e6, 0, 0, 0, 0.0
    seen: set[int] = set()
    for i in order:
        bgr = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
        if not ok:
            continue
        if used + len(buf) > budget:
            break
        used += len(buf)
        if held < args.holdout:
            (holdout / f"{files[i].stem}.jpg").write_bytes(buf.tobytes())
            held += 1
            continue
        (args.out / f"{files[i].stem}.jpg").write_bytes(buf.tobytes())
        seen.add(int(i))
        lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB).astype(np.float32)
        lab2 = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2LAB).astype(np.float32)
        ab_err += float(np.abs(lab[..., 1:] - lab2[..., 1:]).mean())
        kept += 1
    if args.split_links:
        for name, chosen in (("seen", True), ("unseen", False)):
            folder = args.split_links / name
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.iterdir():
                old.unlink()
            for i, f in enumerate(files):
                if (i in seen) == chosen:
                    (folder / f.name).symlink_to(f.resolve())
    print(f"kept {kept} of {len(files)} photos (+{held} held out), {used / 1e6:.1f} MB at quality {args.quality}; "
          f"mean |a,b| change {ab_err / max(kept, 1):.2f} (8-bit Lab)")


if __name__ == "__main__":
    main()
