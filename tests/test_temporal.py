"""Temporal smoothing, scene cuts and deflicker on synthetic clips made here with NumPy."""

import cv2
import numpy as np
import pytest

from filmcolor.temporal import FrameItem, deflicker, histogram_distance, is_cut, motion_ahead, smooth

H, W, SQ = 72, 128, 24
SQ_AB = np.array([55.0, 40.0], np.float32)
BG_AB = np.array([-15.0, 20.0], np.float32)


def _texture(h, w, seed, cell=6):
    noise = np.random.default_rng(seed).random((h // cell + 1, w // cell + 1)).astype(np.float32)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)[:h, :w]


def _square_clip(frames=16, step=3, noise=12.0, seed=0):
    """(L frames, noisy ab predictions, true ab, square boxes): a textured square moving right over a
    static textured background; predictions = truth + smooth per-frame noise + a per-frame offset."""
    rng = np.random.default_rng(seed)
    bg_L = 30 + 25 * _texture(H, W, 1)
    sq_L = 65 + 25 * _texture(SQ, SQ, 2, cell=4)
    Ls, preds, truths, boxes = [], [], [], []
    for t in range(frames):
        x0, y0 = 8 + step * t, (H - SQ) // 2
        L = bg_L.copy()
        L[y0:y0 + SQ, x0:x0 + SQ] = sq_L
        ab = np.empty((2, H, W), np.float32)
        ab[:] = BG_AB[:, None, None]
        ab[:, y0:y0 + SQ, x0:x0 + SQ] = SQ_AB[:, None, None]
        n = np.stack([cv2.resize(rng.normal(0, noise, (H // 8, W // 8)).astype(np.float32), (W, H)) for _ in range(2)])
        n += rng.normal(0, noise, (2, 1, 1)).astype(np.float32)
        Ls.append(L.astype(np.float32))
        preds.append(ab + n)
        truths.append(ab)
        boxes.append((y0, x0))
    return Ls, preds, truths, boxes


def _items(Ls, abs_):
    return [FrameItem(i, None, L, ab.copy()) for i, (L, ab) in enumerate(zip(Ls, abs_))]


def _square_error(out, truths, boxes, skip=3, margin=3):
    """Mean |ab - truth| inside the square (a margin from its edges), frames after the first few."""
    errs = []
    for it, tr, (y0, x0) in list(zip(out, truths, boxes))[skip:]:
        sl = (slice(None), slice(y0 + margin, y0 + SQ - margin), slice(x0 + margin, x0 + SQ - margin))
        errs.append(np.abs(it.ab[sl] - tr[sl]).mean())
    return float(np.mean(errs))


@pytest.mark.parametrize("lookahead", [0, 2])
def test_flow_keeps_moving_square_colour(lookahead):
    Ls, preds, truths, boxes = _square_clip()
    off = list(smooth(iter(_items(Ls, preds)), "off"))
    flow = list(smooth(iter(_items(Ls, preds)), "flow", 0.8, lookahead=lookahead))
    ema = list(smooth(iter(_items(Ls, preds)), "ema", 0.8))
    e_off, e_flow, e_ema = (_square_error(o, truths, boxes) for o in (off, flow, ema))
    assert e_flow < 0.7 * e_off, (e_flow, e_off)
    # the square's mean colour stays near the truth (no drift towards the background) ...
    for it, (y0, x0) in list(zip(flow, boxes))[3:]:
        mean = it.ab[:, y0 + 3:y0 + SQ - 3, x0 + 3:x0 + SQ - 3].mean(axis=(1, 2))
        assert np.abs(mean - SQ_AB).max() < 8, mean
    # ... whereas a per-pixel EMA smears the background into the moving square
    assert e_flow < e_ema, (e_flow, e_ema)


@pytest.mark.parametrize("lookahead", [0, 2])
def test_flow_computed_ahead_gives_the_same_colours(lookahead):
    """The pipeline computes the flows in the decode thread (``motion_ahead``); the result must be
    the smoother's own, a cut included, and flows made with other settings are not trusted."""
    Ls, preds, _, _ = _square_clip(frames=10)
    Ls = Ls[:5] + [100 - L for L in Ls[5:]]  # a cut at frame 5
    own = list(smooth(iter(_items(Ls, preds)), "flow", 0.8, lookahead=lookahead))
    for settings in ({"lookahead": lookahead}, {"lookahead": lookahead, "flow_scale": 1.0}):
        motion = motion_ahead("flow", 0.8, **settings)
        items = _items(Ls, preds)
        for it in items:
            it.motion = motion(it.L)
        assert [it.motion.cut for it in items] == [True] + [False] * 4 + [True] + [False] * 4
        ahead = list(smooth(iter(items), "flow", 0.8, lookahead=lookahead))
        assert all(np.array_equal(a.ab, b.ab) for a, b in zip(own, ahead))
        assert all(it.motion is None for it in ahead)  # the flows are not held with the frames
    assert motion_ahead("ema", 0.8) is None and motion_ahead("flow", 0.0) is None


def test_lookahead_helps_on_noise():
    Ls, preds, truths, boxes = _square_clip(frames=20)
    causal = _square_error(list(smooth(iter(_items(Ls, preds)), "flow", 0.8, lookahead=0)), truths, boxes)
    ahead = _square_error(list(smooth(iter(_items(Ls, preds)), "flow", 0.8, lookahead=3)), truths, boxes)
    assert ahead < causal, (ahead, causal)


@pytest.mark.parametrize("mode,lookahead", [("ema", 2), ("flow", 0), ("flow", 3)])
def test_cut_resets_state(mode, lookahead):
    a_L = 20 + 20 * _texture(H, W, 3)          # dark shot
    b_L = 60 + 30 * _texture(H, W, 4)          # bright shot: a different L histogram
    assert is_cut(a_L, b_L) and not is_cut(a_L, a_L) and histogram_distance(a_L, a_L) == 0.0
    a_ab, b_ab = np.float32([40, 30]), np.float32([-30, -45])
    items = [FrameItem(i, i, a_L if i < 8 else b_L,
                       np.broadcast_to((a_ab if i < 8 else b_ab)[:, None, None], (2, H, W)).astype(np.float32))
             for i in range(16)]
    out = list(smooth(iter(items), mode, 0.9, lookahead=lookahead))
    assert [it.index for it in out] == list(range(16))
    for it in out:
        want = a_ab if it.index < 8 else b_ab
        np.testing.assert_allclose(it.ab, np.broadcast_to(want[:, None, None], (2, H, W)), atol=1e-3)


def test_ema_contract_same_items_same_order():
    Ls, preds, _, _ = _square_clip(frames=6)
    items = _items(Ls, preds)
    out = list(smooth(iter(items), "ema", 0.5))
    assert [it.index for it in out] == list(range(6))
    assert all(o is i for o, i in zip(out, items))
    np.testing.assert_allclose(out[0].ab, preds[0])          # first frame: its own prediction
    np.testing.assert_allclose(out[1].ab, 0.5 * preds[0] + 0.5 * preds[1], rtol=1e-5, atol=1e-4)
    assert list(smooth(iter([]), "flow")) == []
    passed = list(smooth(iter(_items(Ls, preds)), "off"))
    np.testing.assert_array_equal(passed[3].ab, preds[3])


def test_flow_is_bounded_streaming():
    """The flow smoother yields frames before the stream ends (bounded look-ahead)."""
    Ls, preds, _, _ = _square_clip(frames=10)
    pulled = []

    def source():
        for it in _items(Ls, preds):
            pulled.append(it.index)
            yield it

    gen = smooth(source(), "flow", 0.5, lookahead=2)
    first = next(gen)
    assert first.index == 0 and len(pulled) <= 4


def test_bad_input():
    with pytest.raises(ValueError):
        list(smooth(iter([]), "median"))
    with pytest.raises(ValueError):
        list(smooth(iter([FrameItem(0, None, np.zeros((4, 4), np.float32))]), "flow"))


def test_deflicker_reduces_brightness_pumping():
    rng = np.random.default_rng(0)
    base = (60 + 120 * _texture(H, W, 5)).astype(np.float32)
    gains = 1 + 0.15 * rng.uniform(-1, 1, 30)
    offsets = 10 * rng.uniform(-1, 1, 30)
    clip = [np.clip(base * g + o, 0, 255).astype(np.uint8) for g, o in zip(gains, offsets)]
    out = list(deflicker(iter(clip), radius=3))
    assert len(out) == 30 and all(o.dtype == np.uint8 and o.shape == (H, W) for o in out)
    before = np.var(np.diff([c.mean() for c in clip]))
    after = np.var(np.diff([o.mean() for o in out]))
    assert after < 0.25 * before, (after, before)
    # float L* planes and the item form work too
    L = [c.astype(np.float32) * (100 / 255) for c in clip]
    items = list(deflicker(iter([(i, x) for i, x in enumerate(L)]), get=lambda it: it[1],
                           put=lambda it, p: (it[0], p)))
    assert [i for i, _ in items] == list(range(30)) and items[0][1].dtype == np.float32


def test_deflicker_does_not_cross_cuts():
    dark = np.full((H, W), 40, np.uint8) + (40 * _texture(H, W, 6)).astype(np.uint8)
    bright = np.full((H, W), 150, np.uint8) + (80 * _texture(H, W, 7)).astype(np.uint8)
    clip = [dark] * 5 + [bright] * 5
    out = list(deflicker(iter(clip), radius=3))
    for o, c in zip(out, clip):
        assert abs(float(o.mean()) - float(c.mean())) < 1.0


@pytest.mark.parametrize("lookahead", [0, 2])
def test_flow_keeps_fine_chroma_detail_of_a_steady_clip(lookahead):
    """Averaging runs at flow size, but the network's fine detail is kept: a static clip whose
    predictions do not change comes out exactly as predicted, one-pixel chroma stripes included."""
    L = (30 + 40 * _texture(H, W, 8)).astype(np.float32)
    ab = np.empty((2, H, W), np.float32)
    ab[0] = 20 + 30 * _texture(H, W, 9)
    ab[1] = np.where(np.arange(W) % 2, 25.0, -25.0)[None, :]       # Nyquist-rate stripes
    out = list(smooth(iter([FrameItem(i, None, L, ab.copy()) for i in range(8)]), "flow", 0.9,
                      lookahead=lookahead))
    for it in out:
        np.testing.assert_allclose(it.ab, ab, atol=0.05)
        assert it.ab.dtype == np.float32 and it.ab.shape == (2, H, W)


def test_flow_odd_sizes_and_full_scale():
    Ls, preds, truths, boxes = _square_clip(frames=12)
    crop = [L[:-3, :-5] for L in Ls], [p[:, :-3, :-5] for p in preds]
    out = list(smooth(iter(_items(*crop)), "flow", 0.8, lookahead=1))
    assert all(o.ab.shape == (2, H - 3, W - 5) for o in out)
    full = _square_error(list(smooth(iter(_items(Ls, preds)), "flow", 0.8, flow_scale=1.0)), truths, boxes)
    off = _square_error(list(smooth(iter(_items(Ls, preds)), "off")), truths, boxes)
    assert full < 0.7 * off
