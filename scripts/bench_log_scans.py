"""What ``run --scan-transfer log`` buys on log-coded film scans, measured on colour photos.

Each photo is made a black-and-white print (BT.601 luma), coded the way a film scanner codes it
(Kodak's Cineon log: linear light -> 10-bit printing density, 95 black, 685 white) and written as a
DPX sequence; the sequence is coloured twice, as stored and with ``--scan-transfer log``, without
temporal smoothing (the frames are unrelated photos). Reported against the colour originals, in
CIE Lab: colourfulness (Hasler-Suesstrunk), mean a/b chroma and mean |a/b error|::

    python scripts/bench_log_scans.py ../shared/data/photos/val --count 40
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from filmcolor import color, metrics  # noqa: E402
from filmcolor.config import RunConfig  # noqa: E402
from filmcolor.data import list_images  # noqa: E402
from filmcolor.pipeline import colorize_file  # noqa: E402

SIZE = 256


def _square(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    h, w = bgr.shape[:2]
    s = min(h, w)
    bgr = bgr[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return cv2.resize(bgr, (SIZE, SIZE), interpolation=cv2.INTER_AREA)[..., ::-1].astype(np.float64) / 255


def log_codes(rgb: np.ndarray) -> np.ndarray:
    """A colour photo -> its B&W print as 10-bit Cineon code values (``color.video_to_scan``)."""
    grey = rgb @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.round(color.video_to_scan(grey, "log") * 1023), 0, 1023).astype(np.uint16)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photos", type=Path)
    ap.add_argument("--count", type=int, default=40)
    args = ap.parse_args()
    refs = [_square(p) for p in list_images([args.photos])[: args.count]]
    with tempfile.TemporaryDirectory() as tmp:
        scans = Path(tmp) / "scans"
        scans.mkdir()
        with av.open(str(scans / "s.%04d.dpx"), "w", format="image2") as out:
            vs = out.add_stream("dpx", rate=24)
            vs.width, vs.height, vs.pix_fmt = SIZE, SIZE, "gbrp10le"
            for i, rgb in enumerate(refs):
                code = log_codes(rgb)
                wide = np.repeat((code << 6 | code >> 4)[..., None], 3, axis=2)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(wide), format="rgb48le").reformat(
                    format="gbrp10le")
                frame.pts = i
                out.mux(vs.encode(frame))
            out.mux(vs.encode())
        print(f"{len(refs)} photos from {args.photos}, {SIZE}x{SIZE}, as 10-bit log DPX; default model, smoothing off")
        ref_labs = [color.rgb_to_lab_np(r.astype(np.float32)) for r in refs]
        ref_c = np.mean([metrics.colourfulness(r.astype(np.float32)) for r in refs])
        ref_chroma = np.mean([np.hypot(lab[..., 1], lab[..., 2]).mean() for lab in ref_labs])
        print(f"  colour originals: colourfulness {ref_c:.2f}, a/b chroma {ref_chroma:.2f}")
        for transfer in (None, "log"):
            config = RunConfig(smooth="off", frames_as="png", scan_transfer=transfer)
            out_dir = Path(tmp) / f"out-{transfer}"
            colorize_file(scans, out_dir, config)
            c, chroma, err = [], [], []
            for i, lab_ref in enumerate(ref_labs):
                rgb = cv2.imread(str(out_dir / f"s.{i + 1:04d}.png"))[..., ::-1].astype(np.float32) / 255
                lab = color.rgb_to_lab_np(rgb)
                c.append(metrics.colourfulness(rgb))
                chroma.append(np.hypot(lab[..., 1], lab[..., 2]).mean())
                err.append(np.abs(lab[..., 1:] - lab_ref[..., 1:]).mean())
            print(f"  {'as stored' if transfer is None else '--scan-transfer log'}: colourfulness {np.mean(c):.2f}, "
                  f"a/b chroma {np.mean(chroma):.2f}, |a/b error| {np.mean(err):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
