"""``filmcolor eval``: make colour reference footage B&W, colour it with the current settings, score it.

For each reference clip, frame by frame (streamed; memory does not grow with clip length):

1. decode the frame (RGB), convert to Lab; the B&W version is its L* alone;
2. colour it as ``filmcolor run`` would: L* at render size -> ``Colorizer.predict_ab`` (in batches)
   -> :func:`filmcolor.temporal.smooth` with the config's mode/strength/cut threshold -> ab upsampled
   to the frame and joined to the frame's own L* -> sRGB;
3. score three versions against the reference: ``output`` (the colouring), ``grey`` (the B&W input,
   a = b = 0) and ``reference`` (the clip itself, the ceiling/floor of each metric).

Metrics (see :mod:`filmcolor.metrics`): ``psnr``, ``ssim``, ``ciede2000`` (mean ΔE00),
``colourfulness`` (Hasler & Süsstrunk), ``cdc`` (colour distribution consistency, gaps 1, 2, 4, RGB
histograms), ``warp_error`` (squared RGB error against the flow-warped previous frame, occlusion
masked; flow from the reference's L*, DIS ``fast`` preset, frame pairs across a scene cut skipped) and
``warp_error_ab`` (the same on the Lab a/b channels only, in squared a/b units: the flicker that the
colouring adds, without the luminance/flow errors that every version of a clip shares; the grey
input's is 0 by definition, since its a = b = 0 everywhere).
Image metrics are means over the frames scored (every ``image_every``-th frame); the video metrics
use every frame.

The result is a plain dict (JSON-ready with :func:`to_json`), :func:`format_table` renders it.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np

from . import compose, metrics
from .color import lab_to_rgb_np, rgb_to_lab_np
from .config import RunConfig
from .errors import InputError
from .temporal import FrameItem, is_cut, smooth

VERSIONS = ("output", "grey", "reference")
GREY_REFERENCE = 3.0  # colourfulness below which a "colour reference" is really black and white
METRICS = ("psnr", "ssim", "ciede2000", "colourfulness", "cdc", "warp_error", "warp_error_ab")
CDC_GAPS = (1, 2, 4)

Progress = Callable[[Path, int], None]


def evaluate(references: Sequence[str | Path], config: RunConfig, *, max_frames: int | None = None,
             progress: Progress | None = None, colorizer: Any = None, image_every: int = 1,
             lookahead: int | None = None, flow_scale: float | None = None,
             dis_preset: str | None = None) -> dict:
    """Score the current settings on colour reference clips (see the module docstring).

    ``references``: video files with colour. ``config``: the run settings (model, device, render
    size, batch size, smoothing; ``start``/``duration`` pick a stretch of each clip).
    ``max_frames``: at most this many frames per clip. ``progress(path, frames_done)`` is called
    after each scored frame. ``colorizer``: anything with ``render_shape(h, w)`` and
    ``predict_ab(L (N, rh, rw)) -> (N, 2, rh, rw)``; default ``Colorizer.from_config(config)``.
    ``lookahead``: the ``flow`` smoother's look-ahead (None: :func:`filmcolor.temporal.smooth`'s
    default, which is what ``filmcolor run`` uses); ``flow_scale`` and ``dis_preset`` likewise for
    its flow size and DIS preset (for measuring alternatives; ``run`` uses the defaults).

    Returns ``{"settings": {...}, "metrics": [...], "clips": [{"path", "frames", "output", "grey",
    "reference"}], "mean": {"output", "grey", "reference"}, "failed": [{"path", "error"}]}`` where
    each version maps metric name -> float (``inf``/``nan`` where undefined, e.g. the reference's
    PSNR against itself). A clip that cannot be read is named in ``failed`` and the others are
    scored; :class:`filmcolor.errors.FilmcolorError` is raised when none can be, or for the model.
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if image_every < 1:
        raise ValueError(f"image_every must be >= 1, got {image_every}")
    if colorizer is None:
        from .inference import Colorizer

        colorizer = Colorizer.from_config(config)
    opts = {k: v for k, v in (("lookahead", lookahead), ("flow_scale", flow_scale), ("preset", dis_preset))
            if v is not None}
    clips, failed = [], []
    for p in references:
        try:
            clips.append(_evaluate_clip(Path(p), config, colorizer, max_frames, progress, image_every, opts))
        except InputError as exc:  # a broken reference is named; the others are still scored
            if len(references) == 1:
                raise
            failed.append({"path": str(p), "error": str(exc), "exit_code": exc.exit_code})
    if not clips:
        raise InputError(Path(failed[0]["path"]), f"no reference could be read ({len(failed)} failed)")
    settings = {k: v for k, v in asdict(config).items()
                if k in ("model", "render_size", "smooth", "smooth_strength", "saturation", "cut_threshold", "start",
                         "duration", "bars")}
    settings["max_frames"] = max_frames
    settings["precision"] = str(getattr(colorizer, "dtype", "")).replace("torch.", "")  # auto resolves per machine
    settings.update(opts)
    return {"settings": settings, "metrics": list(METRICS), "clips": clips, "mean": _mean(clips), "failed": failed}


# --- per clip -------------------------------------------------------------------------------------
def _frames(path: Path, config: RunConfig, max_frames: int | None) -> Iterator[np.ndarray]:
    """RGB uint8 (H, W, 3) frames of ``path`` (filmcolor.media when present, else PyAV)."""
    try:
        from .media import decode
    except ImportError:  # pragma: no cover - media.py is part of the package
        decode = None
    if decode is not None:
        source: Iterable = decode(path, config.start, config.duration)
    else:  # pragma: no cover
        import av

        def _plain():
            with av.open(str(path)) as c:
                yield from c.decode(video=0)
        source = _plain()
    for n, frame in enumerate(source):
        if max_frames is not None and n >= max_frames:
            break
        yield frame.to_ndarray(format="rgb24")


def _items(path: Path, config: RunConfig, colorizer: Any, max_frames: int | None,
           area: Any = None) -> Iterator[FrameItem]:
    """FrameItems with render-size L and predicted ab; ``frame`` = (reference RGB float, reference Lab).
    With an ``area`` (the picture inside black bars, as ``run`` finds it) the L and ab are the area's."""
    batch: list[FrameItem] = []

    def flush() -> list[FrameItem]:
        ab = colorizer.predict_ab(np.stack([it.L for it in batch]))
        for it, a in zip(batch, ab):
            it.ab = np.asarray(a, dtype=np.float32)
        out = list(batch)
        batch.clear()
        return out

    for i, rgb8 in enumerate(_frames(path, config, max_frames)):
        rgb = rgb8.astype(np.float32) / 255.0
        lab = rgb_to_lab_np(rgb)
        L_pic = lab[..., 0][area.slices()] if compose.applies(area, lab.shape) else lab[..., 0]
        rh, rw = colorizer.render_shape(*L_pic.shape)
        L = cv2.resize(L_pic, (rw, rh), interpolation=cv2.INTER_AREA)
        batch.append(FrameItem(i, (rgb, lab), L))
        if len(batch) >= max(1, config.batch_size):
            yield from flush()
    if batch:
        yield from flush()


class _VideoScore:
    """Streaming CDC and warp errors (RGB and a/b) of one version of a clip."""

    def __init__(self) -> None:
        self.hists: deque = deque(maxlen=max(CDC_GAPS))
        self.js = {g: [0.0, 0] for g in CDC_GAPS}
        self.prev: np.ndarray | None = None
        self.prev_ab: np.ndarray | None = None
        self.warp: list[float] = []
        self.warp_ab: list[float] = []

    def add(self, rgb: np.ndarray, ab: np.ndarray | None, flow: np.ndarray | None, mask: np.ndarray | None) -> None:
        """``ab``: the frame's (H, W, 2) a/b channels, or None where they are 0 by definition (grey)."""
        h = metrics.channel_histograms(rgb)
        for g in CDC_GAPS:
            if len(self.hists) >= g:
                acc = self.js[g]
                acc[0] += float(metrics.js_divergence(self.hists[-g], h).mean())
                acc[1] += 1
        self.hists.append(h)
        if flow is not None and self.prev is not None:
            e = metrics.warp_error_pair(self.prev, rgb, flow, mask)
            if not math.isnan(e):
                self.warp.append(e)
                self.warp_ab.append(0.0 if ab is None else metrics.warp_error_pair(self.prev_ab, ab, flow, mask))
        self.prev, self.prev_ab = rgb, ab

    def result(self) -> dict[str, float]:
        per_gap = [s / n for s, n in self.js.values() if n]
        return {"cdc": float(np.mean(per_gap)) if per_gap else math.nan,
                "warp_error": float(np.mean(self.warp)) if self.warp else math.nan,
                "warp_error_ab": float(np.mean(self.warp_ab)) if self.warp_ab else math.nan}


def _on_timeline(path: Path, config: RunConfig) -> tuple[Any, RunConfig]:
    """The clip's ``VideoInfo`` and ``config`` with ``--start`` on its own clock (``RunConfig.on_timeline``)."""
    from .media import probe

    info = probe(path, config.sequence_fps)
    return info, config.on_timeline(info.start_time)


def _evaluate_clip(path: Path, config: RunConfig, colorizer: Any, max_frames: int | None,
                   progress: Progress | None, image_every: int, smooth_opts: dict | None = None) -> dict:
    from .look import picture_area

    images: dict[str, list[dict[str, float]]] = {v: [] for v in VERSIONS}
    video = {v: _VideoScore() for v in VERSIONS}
    dis = metrics.make_dis("fast")
    prev_L8: np.ndarray | None = None
    prev_L: np.ndarray | None = None
    n = 0
    info, config = _on_timeline(path, config)
    area = picture_area(path, info, config)  # the picture inside black bars, as `run` finds it (None: whole frame)
    items = smooth(_items(path, config, colorizer, max_frames, area), config.smooth, config.smooth_strength,
                   config.cut_threshold, **(smooth_opts or {}))
    for item in items:
        rgb_ref, lab_ref = item.frame
        h, w = lab_ref.shape[:2]
        ab = compose.ab_on_frame(item.ab, h, w, area)
        L = lab_ref[..., :1]
        rgb_out = lab_to_rgb_np(np.concatenate([L, ab], axis=-1))
        rgb_grey = lab_to_rgb_np(np.concatenate([L, np.zeros_like(ab)], axis=-1))
        versions = {"output": rgb_out, "grey": rgb_grey, "reference": rgb_ref}
        chroma = {"output": ab, "grey": None, "reference": lab_ref[..., 1:]}
        if n % image_every == 0:
            for v in ("output", "grey"):
                images[v].append(metrics.image_metrics(versions[v], rgb_ref, lab_ref=lab_ref))
            images["reference"].append({"psnr": math.inf, "ssim": 1.0, "ciede2000": 0.0,
                                        "colourfulness": metrics.colourfulness(rgb_ref)})
        # motion from the reference: flow from this frame into the previous one, trust mask on this frame
        L8 = metrics.to_u8(lab_ref[..., 0])
        flow = mask = None
        if prev_L8 is not None and not is_cut(prev_L, lab_ref[..., 0], config.cut_threshold):
            flow = metrics.dis_flow(L8, prev_L8, dis)
            mask = metrics.occlusion_mask(flow, metrics.dis_flow(prev_L8, L8, dis))
        for v in VERSIONS:
            if flow is None:
                video[v].prev = None  # no pair across a cut
            video[v].add(versions[v], chroma[v], flow, mask)
        prev_L8, prev_L = L8, lab_ref[..., 0]
        n += 1
        if progress is not None:
            progress(path, n)
    row: dict[str, Any] = {"path": str(path), "frames": n}
    if area is not None and not area.whole:
        row["picture"] = str(area)
    for v in VERSIONS:
        img = {k: float(np.mean([m[k] for m in images[v]])) if images[v] else math.nan
               for k in ("psnr", "ssim", "ciede2000", "colourfulness")}
        row[v] = {**img, **video[v].result()}
    if row["reference"]["colourfulness"] < GREY_REFERENCE:
        row["note"] = ("the reference has almost no colour (colourfulness "
                       f"{row['reference']['colourfulness']:.1f}): its scores say little about colouring")
    return row


def _mean(clips: list[dict]) -> dict:
    out = {}
    for v in VERSIONS:
        out[v] = {}
        for k in METRICS:
            vals = [c[v][k] for c in clips if not math.isnan(c[v][k])]
            out[v][k] = float(np.mean(vals)) if vals else math.nan
    return out


# --- presentation ---------------------------------------------------------------------------------
def to_json(result: dict) -> str:
    """The result as strict JSON: ``inf``/``nan`` become ``null``."""
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x
    return json.dumps(clean(result), indent=2)


_HEAD = ("PSNR dB", "SSIM", "ΔE00", "colourf.", "CDC", "warp err", "warp ab")
_FMT = ("{:.2f}", "{:.4f}", "{:.2f}", "{:.1f}", "{:.4f}", "{:.5f}", "{:.3f}")


def _cell(fmt: str, x: float) -> str:
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf"
    return fmt.format(x)


def format_table(result: dict) -> str:
    """A plain-text (Markdown-compatible) table: per clip and the mean, one row per version
    (output | grey | reference). Lower is better for ΔE00, CDC and the warp errors ("warp err": RGB,
    "warp ab": Lab a/b only, 0 for grey by definition)."""
    lines = ["| clip | frames | version | " + " | ".join(_HEAD) + " |",
             "|---|---:|---|" + "---:|" * len(_HEAD)]
    rows = [(Path(c["path"]).name, str(c["frames"]), c) for c in result["clips"]]
    if len(result["clips"]) > 1:
        rows.append(("mean", "", result["mean"]))
    for name, frames, c in rows:
        for i, v in enumerate(VERSIONS):
            cells = [_cell(f, c[v][k]) for f, k in zip(_FMT, METRICS)]
            lines.append(f"| {name if i == 0 else ''} | {frames if i == 0 else ''} | {v} | " + " | ".join(cells) + " |")
    s = result.get("settings", {})
    lines.append("")
    lines += [f"note: {Path(c['path']).name}: {c['note']}" for c in result["clips"] if c.get("note")]
    lines.append(f"smooth={s.get('smooth')} strength={s.get('smooth_strength')} model={s.get('model')} "
                 f"render_size={s.get('render_size')} saturation={s.get('saturation', 1.0):g}")
    return "\n".join(lines)
