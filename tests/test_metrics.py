"""Known-value tests for filmcolor.metrics (synthetic images made here)."""

import math

import numpy as np
import pytest

from filmcolor import metrics
from filmcolor.color import rgb_to_lab_np


def _rgb(seed=0, h=32, w=48):
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def _textured_L(h=64, w=96, seed=0):
    """A smooth random texture in L* units, so optical flow has something to lock on."""
    import cv2

    noise = np.random.default_rng(seed).random((h // 4, w // 4)).astype(np.float32)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC) * 60 + 20


def test_identical_images():
    img = _rgb()
    assert metrics.psnr(img, img) == math.inf
    assert metrics.ssim(img, img) == pytest.approx(1.0)
    lab = rgb_to_lab_np(img)
    assert metrics.ciede2000(lab, lab) == 0.0


def test_psnr_known_value():
    a = np.zeros((8, 8, 3), np.float32)
    b = np.full((8, 8, 3), 0.1, np.float32)  # MSE 0.01 -> 20 dB
    assert metrics.psnr(a, b) == pytest.approx(20.0, abs=1e-4)
    assert metrics.psnr((a * 255).astype(np.uint8), (b * 255).astype(np.uint8)) == pytest.approx(
        10 * math.log10(1 / (25 / 255) ** 2), abs=1e-3)


def test_ssim_drops_with_noise_and_small_images_work():
    img = _rgb()
    noisy = np.clip(img + np.random.default_rng(1).normal(0, 0.2, img.shape).astype(np.float32), 0, 1)
    assert metrics.ssim(noisy, img) < 0.9
    assert metrics.ssim(img[:5, :5], img[:5, :5]) == pytest.approx(1.0)


def test_ciede2000_grey_vs_colour():
    grey = np.full((4, 4, 3), 0.5, np.float32)
    red = grey.copy()
    red[..., 0] = 0.9
    d = metrics.ciede2000(rgb_to_lab_np(red), rgb_to_lab_np(grey))
    assert d > 10


def test_colourfulness():
    grey = np.repeat(_rgb()[..., :1], 3, axis=-1)
    assert metrics.colourfulness(grey) == pytest.approx(0.0, abs=1e-9)
    red = np.zeros((4, 4, 3), np.float32)
    red[..., 0] = 1.0  # rg = 255, yb = 127.5, no spread: M = 0.3 * hypot(255, 127.5)
    assert metrics.colourfulness(red) == pytest.approx(0.3 * math.hypot(255, 127.5))
    assert metrics.colourfulness(_rgb()) > metrics.colourfulness(grey)


def test_image_metrics_keys():
    img = _rgb()
    m = metrics.image_metrics(img, img)
    assert set(m) == {"psnr", "ssim", "ciede2000", "colourfulness"}
    assert m["psnr"] == math.inf and m["ciede2000"] == pytest.approx(0.0, abs=1e-6)


def test_cdc_constant_and_changing():
    f = _rgb()
    assert metrics.cdc([f] * 6) == 0.0
    lab = rgb_to_lab_np(f)
    assert metrics.cdc([lab] * 5, ranges=metrics.LAB_RANGES) == 0.0
    changing = [np.clip(f + 0.1 * i, 0, 1) for i in range(6)]
    assert metrics.cdc(changing) > 0.01
    assert math.isnan(metrics.cdc([f]))
    # JS divergence is symmetric and bounded by 1 (base 2)
    p, q = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert metrics.js_divergence(p, q) == pytest.approx(1.0)
    assert metrics.js_divergence(p, p) == pytest.approx(0.0)


def test_flow_warp_recovers_shift_and_masks_occlusion():
    L0 = _textured_L()
    L1 = np.roll(L0, 3, axis=1)  # content moves 3 px right
    flow = metrics.dis_flow(L0, L1, metrics.make_dis("medium"))
    centre = flow[16:-16, 16:-16, 0]
    assert np.median(centre) == pytest.approx(3.0, abs=0.3)
    back = metrics.warp(L1, flow)
    assert np.abs(back - L0)[16:-16, 16:-16].mean() < 1.0
    bwd = metrics.dis_flow(L1, L0, metrics.make_dis("medium"))
    mask = metrics.occlusion_mask(flow, bwd)
    assert mask[16:-16, 16:-16].mean() > 0.9
    # an inconsistent pair (backward flow pointing the same way) is rejected
    assert metrics.occlusion_mask(flow, flow)[16:-16, 16:-16].mean() < 0.1


def test_warp_error_known_values():
    L = [np.roll(_textured_L(), 2 * t, axis=1) for t in range(4)]
    rgb = [np.repeat((x / 100)[..., None], 3, axis=-1).astype(np.float32) for x in L]
    flows = [metrics.dis_flow(L[t], L[t - 1]) for t in range(1, 4)]
    masks = [metrics.occlusion_mask(flows[t - 1], metrics.dis_flow(L[t - 1], L[t])) for t in range(1, 4)]
    # identical clips: the difference clip has zero warp error
    diff = [a - a for a in rgb]
    assert metrics.warp_error(diff, flows, masks) == 0.0
    # a static clip with zero flow has zero error; flicker adds error
    zero = [np.zeros(L[0].shape + (2,), np.float32)] * 3
    ones = [np.ones(L[0].shape, np.float32)] * 3
    assert metrics.warp_error([rgb[0]] * 4, zero, ones) == 0.0
    flicker = [rgb[0] * (1 + 0.1 * (t % 2)) for t in range(4)]
    assert metrics.warp_error(flicker, zero, ones) > 1e-3
    # motion-compensated error of the moving clip is small next to the uncompensated one
    assert metrics.warp_error(rgb, flows, masks) < 0.25 * metrics.warp_error(rgb, zero, ones)
    with pytest.raises(ValueError):
        metrics.warp_error(rgb, flows[:1], masks[:1])


def test_chroma_warp_error_ignores_luminance():
    L = _textured_L()
    zero = [np.zeros(L.shape + (2,), np.float32)] * 3
    ones = [np.ones(L.shape, np.float32)] * 3
    lab = np.stack([L, np.full_like(L, 20.0), np.full_like(L, -10.0)], axis=-1)
    # brightness flicker alone: RGB warp error > 0, chroma warp error exactly 0
    flick = [lab * np.float32([1 + 0.1 * (t % 2), 1, 1]) for t in range(4)]
    from filmcolor.color import lab_to_rgb_np

    assert metrics.warp_error([lab_to_rgb_np(x) for x in flick], zero, ones) > 1e-4
    assert metrics.chroma_warp_error(flick, zero, ones) == 0.0
    # a grey clip has no chroma error at all; a chroma jump of (3, 4) gives 25 (squared a/b units)
    grey = [np.concatenate([L[..., None], np.zeros(L.shape + (2,), np.float32)], -1)] * 4
    assert metrics.chroma_warp_error(grey, zero, ones) == 0.0
    jump = [lab + np.float32([0, 3, 4]) * (t % 2) for t in range(4)]
    assert metrics.chroma_warp_error(jump, zero, ones) == pytest.approx(25.0, rel=1e-5)
    with pytest.raises(ValueError):
        metrics.chroma_warp_error([L] * 4, zero, ones)
