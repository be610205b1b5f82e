"""Image and video quality metrics for colourisation, plus the optical-flow helpers they need.

Pure NumPy functions; no state, no I/O. Conventions (checked where cheap):

- RGB images are ``(H, W, 3)`` sRGB, either float in [0, 1] or ``uint8`` (converted to [0, 1]).
- Lab images are ``(H, W, 3)`` float CIE L*a*b* (D65): L in [0, 100], a/b roughly in [-110, 110]
  (:func:`filmcolor.color.rgb_to_lab_np` makes them).
- Flows are ``(H, W, 2)`` float32 ``(dx, dy)`` in pixels, in OpenCV's convention:
  ``flow = dis_flow(L0, L1)`` satisfies ``L0(x) ~ L1(x + flow(x))``, so ``warp(img1, flow)`` brings
  frame 1 onto frame 0's pixel grid.
- Masks are ``(H, W)`` float32 in [0, 1]; 1 = the pixel is visible in both frames (trusted).

Image metrics (one frame against its reference): :func:`psnr`, :func:`ssim`, :func:`ciede2000`,
:func:`colourfulness`, and :func:`image_metrics` bundling the four. Video metrics: :func:`cdc`
(colour distribution consistency), :func:`warp_error` (flow-compensated temporal error) and
:func:`chroma_warp_error` (the same on the a/b channels only, blind to luminance).
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000
from skimage.metrics import structural_similarity

# Per-channel value ranges for histogram-based metrics.
RGB_RANGES = ((0.0, 1.0),) * 3
LAB_RANGES = ((0.0, 100.0), (-110.0, 110.0), (-110.0, 110.0))

_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


# --- input checks ---------------------------------------------------------------------------------
def _as_rgb(rgb: np.ndarray, name: str = "rgb") -> np.ndarray:
    """``(H, W, 3)`` uint8 or float -> float32 in [0, 1] (float input is not rescaled, only checked)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {rgb.shape}")
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) / 255.0
    if not np.issubdtype(rgb.dtype, np.floating):
        raise ValueError(f"{name} must be uint8 or float in [0, 1], got {rgb.dtype}")
    return rgb.astype(np.float32, copy=False)


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")


# --- image metrics --------------------------------------------------------------------------------
def psnr(rgb_pred: np.ndarray, rgb_ref: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two RGB images (data range 1). ``inf`` when identical."""
    p, r = _as_rgb(rgb_pred, "rgb_pred"), _as_rgb(rgb_ref, "rgb_ref")
    _same_shape(p, r)
    mse = float(np.mean((p.astype(np.float64) - r) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def ssim(rgb_pred: np.ndarray, rgb_ref: np.ndarray) -> float:
    """Mean structural similarity of two RGB images (scikit-image, Gaussian 11x11 window as in Wang
    et al. 2004, data range 1, averaged over channels). 1.0 when identical. Images smaller than the
    window use the largest odd window that fits (at least 3x3)."""
    p, r = _as_rgb(rgb_pred, "rgb_pred"), _as_rgb(rgb_ref, "rgb_ref")
    _same_shape(p, r)
    side = min(p.shape[0], p.shape[1])
    if side < 3:
        raise ValueError(f"ssim needs images of at least 3x3 pixels, got {p.shape[:2]}")
    if side >= 11:
        return float(structural_similarity(p, r, channel_axis=-1, data_range=1.0, gaussian_weights=True,
                                           sigma=1.5, use_sample_covariance=False))
    win = side if side % 2 else side - 1
    return float(structural_similarity(p, r, channel_axis=-1, data_range=1.0, win_size=win))


def ciede2000(lab_pred: np.ndarray, lab_ref: np.ndarray) -> float:
    """Mean CIEDE2000 colour difference (ΔE00) of two Lab images ``(H, W, 3)``. 0 when identical;
    about 2.3 is a just-noticeable difference."""
    p, r = np.asarray(lab_pred, dtype=np.float64), np.asarray(lab_ref, dtype=np.float64)
    if p.ndim != 3 or p.shape[-1] != 3:
        raise ValueError(f"lab_pred must have shape (H, W, 3), got {p.shape}")
    _same_shape(p, r)
    return float(np.mean(deltaE_ciede2000(p, r, channel_axis=-1)))


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003) colourfulness M of an RGB image, on the 0..255 scale of the paper:
    ``rg = R - G``, ``yb = (R + G) / 2 - B``, ``M = sqrt(sd_rg² + sd_yb²) + 0.3 sqrt(mu_rg² + mu_yb²)``.
    0 for any grey image; roughly 33 "moderately", 59 "quite", 82 "highly" colourful."""
    x = _as_rgb(rgb).astype(np.float64) * 255.0
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    return float(math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean()))


def image_metrics(rgb_pred: np.ndarray, rgb_ref: np.ndarray, lab_pred: np.ndarray | None = None,
                  lab_ref: np.ndarray | None = None) -> dict[str, float]:
    """The per-image validation metrics of a prediction against its reference, as a dict:
    ``psnr`` (dB, higher better), ``ssim`` (higher better), ``ciede2000`` (mean ΔE00, lower better),
    ``colourfulness`` (of the prediction; compare with the reference's). RGB as in the module
    conventions; Lab versions are computed from RGB unless given (pass them to save the conversion)."""
    p, r = _as_rgb(rgb_pred, "rgb_pred"), _as_rgb(rgb_ref, "rgb_ref")
    _same_shape(p, r)
    if lab_pred is None:
        lab_pred = cv2.cvtColor(np.clip(p, 0, 1), cv2.COLOR_RGB2Lab)
    if lab_ref is None:
        lab_ref = cv2.cvtColor(np.clip(r, 0, 1), cv2.COLOR_RGB2Lab)
    return {"psnr": psnr(p, r), "ssim": ssim(p, r), "ciede2000": ciede2000(lab_pred, lab_ref),
            "colourfulness": colourfulness(p)}


# --- colour distribution consistency --------------------------------------------------------------
def channel_histograms(frame: np.ndarray, bins: int = 64,
                       ranges: Sequence[tuple[float, float]] = RGB_RANGES) -> np.ndarray:
    """Normalised per-channel histograms of an ``(H, W, C)`` frame: ``(C, bins)`` float64, rows sum
    to 1. ``ranges`` gives each channel's (low, high); values outside are clipped into the end bins.
    uint8 frames are read as RGB in [0, 1]."""
    f = np.asarray(frame)
    if f.dtype == np.uint8:
        f = f.astype(np.float32) / 255.0
    if f.ndim != 3 or f.shape[-1] != len(ranges):
        raise ValueError(f"frame must have shape (H, W, {len(ranges)}), got {f.shape}")
    out = np.empty((f.shape[-1], bins), dtype=np.float64)
    for c, (lo, hi) in enumerate(ranges):
        idx = np.clip(((f[..., c] - lo) * (bins / (hi - lo))).astype(np.int64), 0, bins - 1)
        h = np.bincount(idx.ravel(), minlength=bins).astype(np.float64)
        out[c] = h / max(h.sum(), 1.0)
    return out


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence (base 2, so in [0, 1]) between distributions along the last axis."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(a > 0, a * np.log2(a / np.where(m > 0, m, 1.0)), 0.0)
        return t.sum(axis=-1)

    return np.maximum(0.5 * kl(p) + 0.5 * kl(q), 0.0)


def cdc(frames: Sequence[np.ndarray], gaps: Sequence[int] = (1, 2, 4), bins: int = 64,
        ranges: Sequence[tuple[float, float]] = RGB_RANGES) -> float:
    """Colour distribution consistency (Liu et al. 2021): the Jensen–Shannon divergence between the
    per-channel histograms of frames ``t`` and ``t + g``, averaged over channels and frame pairs for
    each gap ``g``, then over the gaps. Lower is steadier; 0 for a constant clip. Frames are
    ``(H, W, C)``: RGB by default, pass ``ranges=LAB_RANGES`` for Lab. Gaps longer than the clip are
    skipped; ``nan`` when no gap fits (a single frame)."""
    hists = [channel_histograms(f, bins, ranges) for f in frames]
    per_gap = [float(np.mean([js_divergence(hists[t], hists[t + g]).mean() for t in range(len(hists) - g)]))
               for g in gaps if 0 < g < len(hists)]
    return float(np.mean(per_gap)) if per_gap else math.nan


# --- optical flow helpers -------------------------------------------------------------------------
def to_u8(L: np.ndarray) -> np.ndarray:
    """An L* plane (float, [0, 100]) -> uint8 [0, 255] for OpenCV's flow; uint8 passes through."""
    L = np.asarray(L)
    if L.dtype == np.uint8:
        return L
    return np.clip(L * 2.55 + 0.5, 0, 255).astype(np.uint8)


def make_dis(preset: str = "ultrafast") -> cv2.DISOpticalFlow:
    """A DIS optical-flow object (``ultrafast`` | ``fast`` | ``medium``); reuse it across frames.
    Not thread-safe: one per thread."""
    try:
        return cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
    except KeyError:
        raise ValueError(f"unknown DIS preset {preset!r}; known: {', '.join(_DIS_PRESETS)}") from None


def dis_flow(L0: np.ndarray, L1: np.ndarray, dis: cv2.DISOpticalFlow | None = None) -> np.ndarray:
    """Dense flow from frame 0 to frame 1 with OpenCV DIS: ``(H, W, 2)`` float32 such that
    ``L0(x) ~ L1(x + flow(x))``. ``L0``/``L1`` are ``(H, W)`` L* float in [0, 100] or uint8."""
    a, b = to_u8(L0), to_u8(L1)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"L0 and L1 must be (H, W) planes of one shape, got {a.shape} and {b.shape}")
    return (dis or make_dis()).calc(a, b, None)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    return gx, gy


def warp(img: np.ndarray, flow: np.ndarray, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Sample ``img`` (``(H, W)`` or ``(H, W, C)``, any C) at ``x + flow(x)`` with bilinear
    interpolation: with ``flow = dis_flow(L0, L1)``, ``warp(img1, flow)`` lies on frame 0's grid.
    Returns float32 of ``img``'s shape."""
    img = np.asarray(img, dtype=np.float32)
    h, w = flow.shape[:2]
    if img.shape[:2] != (h, w):
        raise ValueError(f"img {img.shape[:2]} and flow {flow.shape[:2]} differ in size")
    gx, gy = _grid(h, w)
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    if img.ndim == 3 and img.shape[2] > 4:  # cv2.remap handles at most 4 channels at once
        return np.stack([cv2.remap(img[..., c], mx, my, cv2.INTER_LINEAR, borderMode=border)
                         for c in range(img.shape[2])], axis=-1)
    out = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=border)
    return out.reshape(img.shape)


def occlusion_mask(fwd: np.ndarray, bwd: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Forward–backward consistency check (Sundaram et al. 2010) on frame 0's grid.

    ``fwd = dis_flow(L0, L1)``, ``bwd = dis_flow(L1, L0)``. A pixel is trusted (1.0) when following
    ``fwd`` and then ``bwd`` returns close to where it started,
    ``|fwd + bwd(x + fwd)|² <= alpha (|fwd|² + |bwd(x + fwd)|²) + beta``, and its target lies inside
    the frame; otherwise 0.0 (occluded or unreliable). Returns ``(H, W)`` float32."""
    if fwd.shape != bwd.shape or fwd.ndim != 3 or fwd.shape[2] != 2:
        raise ValueError(f"fwd and bwd must be (H, W, 2) flows of one shape, got {fwd.shape}, {bwd.shape}")
    h, w = fwd.shape[:2]
    gx, gy = _grid(h, w)
    mx, my = gx + fwd[..., 0], gy + fwd[..., 1]
    back = cv2.remap(bwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    diff = ((fwd + back) ** 2).sum(-1)
    mag = (fwd ** 2).sum(-1) + (back ** 2).sum(-1)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return ((diff <= alpha * mag + beta) & inside).astype(np.float32)


# --- temporal warping error -----------------------------------------------------------------------
def warp_error_pair(prev: np.ndarray, cur: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> float:
    """Masked mean of ``||cur(x) - prev(x + flow(x))||²`` (squared L2 over channels), where
    ``flow = dis_flow(L_cur, L_prev)`` aligns ``prev`` to ``cur`` and ``mask`` (on ``cur``'s grid)
    weights the pixels. ``nan`` when the mask is empty."""
    cur = np.asarray(cur, dtype=np.float32)
    d = cur - warp(prev, flow)
    e = (d * d).sum(-1) if d.ndim == 3 else d * d
    m = np.asarray(mask, dtype=np.float32)
    total = float(m.sum())
    return math.nan if total <= 0 else float((e * m).sum() / total)


def warp_error(frames: Sequence[np.ndarray], flows: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> float:
    """Flow-compensated temporal error of a clip (Lai et al. 2018), the mean over ``t >= 1`` of
    :func:`warp_error_pair` ``(frames[t-1], frames[t], flows[t-1], masks[t-1])``.

    ``frames``: T arrays ``(H, W)`` or ``(H, W, C)`` (RGB in [0, 1] for comparable numbers).
    ``flows[t-1] = dis_flow(L_t, L_{t-1})`` and ``masks[t-1]`` its trust mask on frame t, e.g.
    ``occlusion_mask(flows[t-1], dis_flow(L_{t-1}, L_t))``; compute them on the reference so that
    several versions of a clip are scored with the same motion. Pairs with an empty mask are
    skipped; ``nan`` when nothing is left. Lower is steadier; 0 for frames identical along the flow."""
    if len(flows) != len(frames) - 1 or len(masks) != len(flows):
        raise ValueError(f"need T-1 flows and masks for T frames, got {len(frames)}, {len(flows)}, {len(masks)}")
    errs = [warp_error_pair(frames[t - 1], frames[t], flows[t - 1], masks[t - 1]) for t in range(1, len(frames))]
    errs = [e for e in errs if not math.isnan(e)]
    return float(np.mean(errs)) if errs else math.nan


def chroma_warp_error(labs: Sequence[np.ndarray], flows: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> float:
    """:func:`warp_error` of the chroma alone: ``labs`` are T Lab frames ``(H, W, 3)`` (a/b units) and
    only their a/b channels are compared, so the result is the masked mean of ``|Δa|² + |Δb|²``
    between a frame and its flow-warped predecessor. Luminance errors (flow misses on edges and
    texture, film grain, brightness flicker) are shared by every colouring of one B&W clip and
    dominate the RGB warp error; this one isolates what the colouring adds. 0 for any grey clip."""
    for lab in labs:
        if np.ndim(lab) != 3 or np.shape(lab)[-1] != 3:
            raise ValueError(f"labs must be (H, W, 3) Lab frames, got {np.shape(lab)}")
    return warp_error([np.asarray(lab, dtype=np.float32)[..., 1:] for lab in labs], flows, masks)
